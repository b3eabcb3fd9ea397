-- Consent history up to as_of with the proof kept: the exact text and its hash, and who
-- made the change (the customer, an agent, or an import).
select
    consent_event_id,
    customer_id,
    phone_e164,
    channel,
    category,
    action,
    consent_source,
    consent_text,
    case when consent_text is not null then {{ dbt.hash('consent_text') }} end
        as consent_text_hash,
    keyword,
    case consent_source
        when 'support' then 'support_agent'
        when 'import' then 'import'
        else 'customer'
    end as changed_by,
    occurred_at,
    partition_date,
    loaded_at
from {{ ref('stg_raw__consent_events') }}
where occurred_at <= {{ as_of() }}
