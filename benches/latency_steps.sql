-- Where a send → `sent` webhook's time goes, for the deliveries to the endpoint whose URL is
-- :'hook' (psql -v hook=URL): p50 / p99 ms of each step, from the rows: the message's queue
-- time → its `sent` event written (outbox worker) → the event fanned out into the delivery
-- (webhook worker) → the succeeded attempt's start → its answer. Used by benches/webhooks.sh
-- and benches/ab.sh.
WITH s AS (
    SELECT (extract(epoch FROM (convert_from(e.payload, 'UTF8')::jsonb->'data'->>'created_at')::timestamptz) * 1e6)::bigint AS queued_us,
      e.occurred_at_us AS sent_us, d.created_at_us AS fanned_us, a.at_us AS attempt_us, a.latency_ms
    FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
      JOIN webhook_attempts a ON a.delivery_id = d.id AND a.outcome = 'succeeded'
    WHERE d.endpoint_id IN (SELECT id FROM webhook_endpoints WHERE url = :'hook')
      AND convert_from(e.payload, 'UTF8')::jsonb->'data'->>'delivery_state' = 'sent')
  SELECT 'queued -> sent event ' || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY sent_us - queued_us) / 1000)
      || ' / ' || round(percentile_cont(0.99) WITHIN GROUP (ORDER BY sent_us - queued_us) / 1000)
    || ', -> fanned out ' || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY fanned_us - sent_us) / 1000)
      || ' / ' || round(percentile_cont(0.99) WITHIN GROUP (ORDER BY fanned_us - sent_us) / 1000)
    || ', -> attempt ' || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY attempt_us - fanned_us) / 1000)
      || ' / ' || round(percentile_cont(0.99) WITHIN GROUP (ORDER BY attempt_us - fanned_us) / 1000)
    || ', attempt ' || percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms) || ' / ' || percentile_disc(0.99) WITHIN GROUP (ORDER BY latency_ms)
  FROM s;
