select * from {{ ref('int_consent_events_hashed') }}
