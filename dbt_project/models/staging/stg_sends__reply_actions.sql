-- Replies that answered a question one of our texts asked (send_jobs/answers.py), as
-- explicit events: the customer chose an option (e.g. confirmed an appointment). A warehouse
-- that has not matched any reply yet has no sends.reply_actions: the model is then empty.
-- depends_on: {{ source('sends', 'reply_actions') }}
{%- set actions = adapter.get_relation(
    database=target.database, schema='sends', identifier='reply_actions') if execute else none %}
{%- if actions is not none %}
select
    'reply:' || inbound_id as event_id,
    customer_id,
    'sms_reply' as event_type,
    occurred_at,
    'explicit' as provenance,
    'sms' as channel,
    cast(null as {{ dbt.type_string() }}) as product_id,
    cast(json_object('campaign_id', campaign_id, 'action', action, 'question_id', question_id,
                     'occasion', occasion) as {{ dbt.type_string() }}) as properties,
    cast(occurred_at as date) as partition_date,
    loaded_at,
    occasion,
    action
from {{ source('sends', 'reply_actions') }}
{%- else %}
{{ no_events(extra=['occasion', 'action']) }}
{%- endif %}
