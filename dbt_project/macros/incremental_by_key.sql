{#- Tables kept per entity (an order, a customer) instead of recomputed from all history.
    Every row carries the fingerprint of the fact rows it was computed from: how many, and
    the newest loaded_at (and, where the catalog is read, the newest load of a product
    bought). A build first deletes the rows whose fingerprint no longer matches (lines
    added, reloaded, removed, or cut off by an earlier as_of), then computes the entities
    missing from the table. Nothing depends on a log of earlier builds: a build that failed
    half-way leaves entities missing, and the next one computes them. -#}

{#- The fingerprints of `lines` per `key`, as a subquery. -#}
{% macro fingerprints_of(lines, key, catalog=false) -%}
    (
        select
            l.{{ key }},
            count(*) as source_rows,
            max(l.loaded_at) as source_loaded_at
            {%- if catalog %},
            max(p.loaded_at) as catalog_loaded_at
            {%- endif %}
        from {{ lines }} as l
        {%- if catalog %}
        left join (  -- one row per product, however many versions it has
            select product_id, max(loaded_at) as loaded_at
            from {{ source('raw', 'products') }}
            group by product_id
        ) as p on l.product_id = p.product_id
        {%- endif %}
        group by l.{{ key }}
    )
{%- endmacro %}

{#- Pre-hook: delete the rows whose fingerprint differs from `fingerprints` (a relation or
    subquery with `key` and the fingerprint columns). `columns` maps this table's
    fingerprint columns to those of `fingerprints`. -#}
{% macro delete_stale(fingerprints, key, columns) -%}
    {%- if is_incremental() -%}
    {%- set have = adapter.get_columns_in_relation(this) | map(attribute='name') | list -%}
    {%- if columns.keys() | reject('in', have) | list -%}
    delete from {{ this }}  -- written before fingerprints existed: compute every entity again
    {%- else -%}
    delete from {{ this }} where {{ key }} in (
        select t.{{ key }}
        from {{ this }} as t
        left join {{ fingerprints }} as f on t.{{ key }} = f.{{ key }}
        where f.{{ key }} is null
        {%- for mine, theirs in columns.items() %}
            or t.{{ mine }} is distinct from f.{{ theirs }}
        {%- endfor %}
    )
    {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- A filter for the body: only the entities the table lacks (after delete_stale). -#}
{% macro missing_from_this(key) -%}
    {%- if is_incremental() %}
    and {{ key }} not in (select {{ key }} from {{ this }})
    {%- endif %}
{%- endmacro %}
