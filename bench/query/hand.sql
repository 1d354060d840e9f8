-- pgbench: the same page written by hand, as one would: pick the page's rows
-- (and the total) first, then fetch category and variants for those rows only
\set cat random(1, 20)
\set page random(1, 20)
SELECT jsonb_build_object(
         'entries', coalesce(jsonb_agg(to_jsonb(p) - 'total'
                                       || jsonb_build_object('category', to_jsonb(c), 'variant', coalesce(v.rows, '[]'))
                                       ORDER BY p.name, p.id), '[]'),
         'total', coalesce(max(p.total), 0), 'page', :page::int, 'page_size', 20,
         'total_pages', (coalesce(max(p.total), 0) + 19) / 20)
  FROM (SELECT t.*, count(*) OVER () AS total
          FROM product t
         WHERE t.category_id = :cat::int AND t.status = 'published'
         ORDER BY t.name, t.id
         LIMIT 20 OFFSET (:page::int - 1) * 20) AS p
  LEFT JOIN category c ON c.id = p.category_id
  LEFT JOIN LATERAL (SELECT jsonb_agg(to_jsonb(v) ORDER BY v.id) AS rows
                       FROM variant v WHERE v.product_id = p.id) v ON true;
