{#- The run's time. Every model reads only rows at or before it, so a backfill for an old
    date builds exactly what a run on that date would have built.
    Dagster passes it in RETENTEXT_AS_OF; a var `as_of` (unit tests, `--vars`) wins. It is
    read only when a node runs: while dbt parses, no env var or var changes with the run, so
    each build re-parses only what changed on disk (a full parse was about 5 s a build).
    Unset, it reads everything (ad-hoc `dbt build`). -#}
{% macro as_of() -%}
    {%- if execute -%}
        {%- set value = var("as_of", env_var("RETENTEXT_AS_OF", "2100-01-01 00:00:00")) -%}
    {%- else -%}
        {%- set value = "2100-01-01 00:00:00" -%}
    {%- endif -%}
    cast('{{ value }}' as timestamp)
{%- endmacro %}
