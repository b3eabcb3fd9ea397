{#- The columns of a behavioural event, typed and empty: what a stg_sends__ model that turns
    the send ledger into events returns when the ledger table is not there yet (a new
    warehouse, Spark). `extra` names more string columns the model carries. -#}
{% macro no_events(extra=[]) -%}
select
    cast(null as {{ dbt.type_string() }}) as event_id,
    cast(null as {{ dbt.type_string() }}) as customer_id,
    cast(null as {{ dbt.type_string() }}) as event_type,
    cast(null as {{ dbt.type_timestamp() }}) as occurred_at,
    cast(null as {{ dbt.type_string() }}) as provenance,
    cast(null as {{ dbt.type_string() }}) as channel,
    cast(null as {{ dbt.type_string() }}) as product_id,
    cast(null as {{ dbt.type_string() }}) as properties,
    cast(null as date) as partition_date,
    cast(null as {{ dbt.type_timestamp() }}) as loaded_at
    {%- for column in extra %},
    cast(null as {{ dbt.type_string() }}) as {{ column }}
    {%- endfor %}
where 1 = 0
{%- endmacro %}
