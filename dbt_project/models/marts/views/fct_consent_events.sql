-- Consent history up to as_of with its proof. A view: the rows are stored, by landing day,
-- in int_consent_events_accumulated.
select * from {{ ref('int_consent_events_accumulated') }}
