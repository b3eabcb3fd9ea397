{#- Dialect-specific expressions, one dispatch macro each (DuckDB default, Spark override). -#}

{#- A UTC timestamp as wall-clock time in an IANA zone. -#}
{% macro utc_to_local(ts, tz) -%}
    {{ return(adapter.dispatch('utc_to_local', 'retentext')(ts, tz)) }}
{%- endmacro %}
{% macro default__utc_to_local(ts, tz) -%}
    cast(timezone({{ tz }}, cast({{ ts }} as timestamptz)) as timestamp)
{%- endmacro %}
{% macro spark__utc_to_local(ts, tz) -%}
    from_utc_timestamp({{ ts }}, {{ tz }})
{%- endmacro %}

{#- Wall-clock time in an IANA zone as a UTC timestamp. -#}
{% macro local_to_utc(ts, tz) -%}
    {{ return(adapter.dispatch('local_to_utc', 'retentext')(ts, tz)) }}
{%- endmacro %}
{% macro default__local_to_utc(ts, tz) -%}
    cast(timezone('UTC', timezone({{ tz }}, cast({{ ts }} as timestamp))) as timestamp)
{%- endmacro %}
{% macro spark__local_to_utc(ts, tz) -%}
    to_utc_timestamp({{ ts }}, {{ tz }})
{%- endmacro %}

{#- Exact median (Spark: percentile, exact for numeric input). -#}
{% macro median(expr) -%}
    {{ return(adapter.dispatch('median', 'retentext')(expr)) }}
{%- endmacro %}
{% macro default__median(expr) -%}
    median({{ expr }})
{%- endmacro %}
{% macro spark__median(expr) -%}
    percentile({{ expr }}, 0.5)
{%- endmacro %}

{#- An amount in the reporting currency, typed the same on every engine: DuckDB multiplies a
    decimal(18,4) price by a decimal(18,8) rate into decimal(38,12), Spark's decimal arithmetic
    narrows the same product to decimal(38,6). The marts' contracts name this type. -#}
{% macro money(expr) -%}
    cast({{ expr }} as decimal(38, 12))
{%- endmacro %}

{#- A text field of a JSON object held as text. -#}
{% macro json_text(json, key) -%}
    {{ return(adapter.dispatch('json_text', 'retentext')(json, key)) }}
{%- endmacro %}
{% macro default__json_text(json, key) -%}
    json_extract_string({{ json }}, '$.{{ key }}')
{%- endmacro %}
{% macro spark__json_text(json, key) -%}
    get_json_object({{ json }}, '$.{{ key }}')
{%- endmacro %}
