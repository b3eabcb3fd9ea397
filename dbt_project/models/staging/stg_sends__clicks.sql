-- Taps on our tracked links, as the link service journaled them (send_jobs/link_service.py),
-- in the shape of a behavioural event: sms_click, explicit (the customer tapped our link).
-- Link-preview bots opened the link without anyone tapping it: they are not events. A
-- warehouse that has not loaded any click yet has no sends.clicks: the model is then empty.
-- depends_on: {{ source('sends', 'clicks') }}
{%- set clicks = adapter.get_relation(
    database=target.database, schema='sends', identifier='clicks') if execute else none %}
{%- if clicks is not none %}
select
    'click:' || click_id as event_id,
    customer_id,
    'sms_click' as event_type,
    clicked_at as occurred_at,
    'explicit' as provenance,
    'sms' as channel,
    cast(null as {{ dbt.type_string() }}) as product_id,
    cast(json_object('campaign_id', campaign_id, 'message_id', message_id,
                     'ua_class', ua_class) as {{ dbt.type_string() }}) as properties,
    cast(clicked_at as date) as partition_date,
    loaded_at
from {{ source('sends', 'clicks') }}
where ua_class <> 'preview'
{%- else %}
{{ no_events() }}
{%- endif %}
