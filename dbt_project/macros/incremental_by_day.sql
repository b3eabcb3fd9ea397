{#- The large facts are rebuilt by landing day (raw partition_date) instead of copied whole
    every night. An incremental run replaces:
    - the days loaded or reloaded since the last build (their loaded_at is newer);
    - the days whose rows the last build's as_of may have cut off. A row may be stamped up
      to 2 days after its file's day (ingest's future slack), so every day from 3 days
      before the newest row already built is taken again;
    - with `lines` (rows that carry their product's category), the days that sold a
      product (re)loaded since the last build;
    - with `changed_at` (lines with versions), every day holding a version of a line that
      got a new version since the last build (the sale's day, where the line lives), and
      the days holding a line whose version is newer than as_of (a backfill to an earlier
      as_of).
    A run with an earlier as_of first deletes the rows past it (see the pre_hook), so a
    backfill builds what a full build would. Known gap: a reloaded day whose rows were all
    quarantined keeps its old rows until a full refresh. -#}
{% macro days_to_rebuild(ts, lines=none, changed_at=none) -%}
    {%- if is_incremental() %}
    and (
        partition_date >= (select {{ dbt.dateadd('day', -3, 'cast(max(' ~ ts ~ ') as date)') }}
                           from {{ this }})
        or loaded_at > (select max(loaded_at) from {{ this }})
        {%- if lines is not none %}
        -- lines carry their product's category: a reloaded product rebuilds its days
        or partition_date in (
            select l.partition_date
            from {{ lines }} as l
            inner join {{ source('raw', 'products') }} as p on l.product_id = p.product_id
            where p.loaded_at > (select max(loaded_at) from {{ this }})
        )
        {%- endif %}
        {%- if changed_at is not none %}
        -- a later version of a line (a refund) lands on its own day but changes the line on
        -- its sale's day: every day that holds a version of such a line is built again
        or partition_date in (
            select v.partition_date from {{ lines }} as v
            where v.order_line_id in (
                select order_line_id from {{ lines }}
                where updated_at is not null
                    and loaded_at > (select max(loaded_at) from {{ this }})
            )
        )
        {%- set have = adapter.get_columns_in_relation(this) | map(attribute='name') | list %}
        {%- if changed_at in have %}
        -- a day holding a line changed after as_of (as_of moved back): built again as known
        or partition_date in (
            select partition_date from {{ this }} where {{ changed_at }} > {{ as_of() }}
        )
        {%- else %}
        or true  -- built before lines had versions: every day again, once
        {%- endif %}
        {%- endif %}
    )
    {%- endif %}
{%- endmacro %}

{% macro delete_after_as_of(ts) -%}
    {%- if is_incremental() -%}
    delete from {{ this }} where {{ ts }} > {{ as_of() }}
    {%- endif -%}
{%- endmacro %}
