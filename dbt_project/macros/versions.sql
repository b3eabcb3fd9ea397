{#- Records that change (customers, products, order lines) land again with a later
    updated_at; raw keeps every version (ingest's key includes updated_at).

    scd2_span(key, since): the span of each version, as select-list columns:
    valid_from (when the version took effect: its updated_at, else `since`, the record's
    own time) and valid_to (the next version's valid_from; null for the current one).

    version_at_as_of(versions, key, columns): one row per `key`, the version known at as_of
    (the newest whose valid_from is at or before it), with `columns`, partition_date (the
    landing day of the record's first version, where it lives in the facts) and loaded_at
    (the newest load among its known versions, the fingerprint of incremental models).
    Records that never changed skip the ranking: only keys with an updated_at version are
    sorted, so an export without updates costs one filter. -#}
{% macro scd2_span(key, since) -%}
    coalesce(updated_at, {{ since }}) as valid_from,
    lead(coalesce(updated_at, {{ since }})) over (
        partition by {{ key }}
        order by coalesce(updated_at, {{ since }}), updated_at
    ) as valid_to
{%- endmacro %}

{% macro version_at_as_of(versions, key, columns) -%}
with known as (
    select *
    from {{ versions }}
    where valid_from <= {{ as_of() }}
),

changed as (
    select distinct {{ key }}
    from known
    where updated_at is not null
),

ranked as (
    select
        *,
        row_number() over (
            partition by {{ key }} order by valid_from desc, updated_at desc
        ) as version_rank,
        min(partition_date) over (partition by {{ key }}) as first_partition_date,
        max(loaded_at) over (partition by {{ key }}) as newest_loaded_at
    from known
    where {{ key }} in (select {{ key }} from changed)
)

select {{ columns | join(', ') }}, updated_at, valid_from, partition_date, loaded_at
from known
where {{ key }} not in (select {{ key }} from changed)
union all
select
    {{ columns | join(', ') }}, updated_at, valid_from,
    first_partition_date as partition_date,
    newest_loaded_at as loaded_at
from ranked
where version_rank = 1
{%- endmacro %}
