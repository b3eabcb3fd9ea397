{#- `unique` for a table built by day: the keys of the rows this build wrote (build_id is
    the dbt invocation) must not appear twice in the whole table. Rows earlier builds wrote
    were tested then, so a nightly build does not group every key again; when every row is
    new (a full build, Spark) it is the plain test. -#}
{% test unique_for_rows_built(model, column_name) %}
{%- set old_rows = 0 -%}
{%- if execute -%}
    {%- set query -%}
        select count(*) from {{ model }} where build_id is distinct from '{{ invocation_id }}'
    {%- endset -%}
    {%- set old_rows = run_query(query).columns[0].values()[0] -%}
{%- endif %}
select {{ column_name }} as unique_field, count(*) as n_records
from {{ model }}
{%- if old_rows > 0 %}
where {{ column_name }} in (
    select {{ column_name }} from {{ model }} where build_id = '{{ invocation_id }}'
)
{%- endif %}
group by {{ column_name }}
having count(*) > 1
{% endtest %}
