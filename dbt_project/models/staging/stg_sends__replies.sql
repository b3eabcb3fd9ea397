-- Replies (MO) that change SMS consent: STOP-type (opt_out) and START/UNSTOP (opt_in), as the
-- receiver read them. A warehouse that has not loaded any reply yet has no sends.inbound:
-- the model is then empty, with the same columns.
-- depends_on: {{ source('sends', 'inbound') }}
{%- set inbound = adapter.get_relation(
    database=target.database, schema='sends', identifier='inbound') if execute else none %}
{%- if inbound is not none %}
select
    inbound_id,
    phone_e164,
    action,
    occurred_at,
    received_at
from {{ source('sends', 'inbound') }}
where action in ('opt_out', 'opt_in')
{%- else %}
select
    cast(null as {{ dbt.type_string() }}) as inbound_id,
    cast(null as {{ dbt.type_string() }}) as phone_e164,
    cast(null as {{ dbt.type_string() }}) as action,
    cast(null as {{ dbt.type_timestamp() }}) as occurred_at,
    cast(null as {{ dbt.type_timestamp() }}) as received_at
where 1 = 0
{%- endif %}
