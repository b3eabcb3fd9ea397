{#- The run's time. Every model reads only rows at or before it, so a backfill for an old
    date builds exactly what a run on that date would have built. -#}
{% macro as_of() -%}
    cast('{{ var("as_of") }}' as timestamp)
{%- endmacro %}
