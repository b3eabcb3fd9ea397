{#- On Spark, the raw tables are parquet files exported from the ingest warehouse
    (`retentext compare-engines` writes them to $RETENTEXT_SPARK_DIR/raw/<table>). -#}
{% macro register_raw_tables() %}
    {% if target.type == 'spark' %}
        {% set root = env_var('RETENTEXT_SPARK_DIR', '../.spark') ~ '/raw' %}
        {% do run_query('create database if not exists raw') %}
        {% for table in ['customers', 'products', 'orders', 'events', 'consent'] %}
            {% do run_query('drop table if exists raw.' ~ table) %}
            {% do run_query('create table raw.' ~ table ~ " using parquet location '"
                            ~ root ~ '/' ~ table ~ "'") %}
        {% endfor %}
    {% endif %}
{% endmacro %}
