-- sql/parts/99_footer.sql: tell a running PostgREST to reload its schema cache (docs/install.md)

-- Delivered at commit.  Every upgrade script ends with the same statement.
NOTIFY pgrst, 'reload schema';
