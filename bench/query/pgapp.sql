-- pgbench: one page of published products of a category, by name, with category and variants
\set cat random(1, 20)
\set page random(1, 20)
SELECT pgapp.paginate(
         pgapp.sort_by(pgapp.sort_by(
           pgapp.preload(
             pgapp.filter_by(pgapp.filter_by(pgapp.from('product'), 'category_id', :cat::int), 'status', 'published'::text),
             ARRAY['category', 'variant']),
           'name'), 'id'),
         :page::int, 20);
