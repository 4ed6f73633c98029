-- Online evaluation (jobs/online/evaluate.py, DAG online_evaluation; docs/monitoring.md defines
-- each column). One row per event-time hour of the stream, model version and variant, plus
-- the roll-ups model_version = '*' (per variant) and model_version = variant = '*' (the hour).
-- '' is "none": no experiment ran (variant), or no served answer to attribute lines to.
-- Rerunning an hour replaces its rows (upsert on the key): later data makes them complete.
CREATE TABLE IF NOT EXISTS online_metrics (
    hour               timestamp NOT NULL,        -- event time (stream clock), start of hour
    model_version      text NOT NULL,
    variant            text NOT NULL,
    requests           bigint NOT NULL,           -- recommendation request lines in the stream
    ok_requests        bigint NOT NULL,           -- status 200 within deadline_ms
    availability       double precision,
    latency_p50_ms     double precision,
    latency_p95_ms     double precision,
    latency_p99_ms     double precision,
    answers            bigint NOT NULL,           -- lines matched to a prediction-log record
    personalised       bigint NOT NULL,           -- ... whose source was the model
    personalised_share double precision,
    lists              bigint NOT NULL,           -- served lists (status 200, non-empty)
    hits               bigint NOT NULL,           -- ... followed by a watch of a listed movie
    online_accuracy    double precision,
    accuracy_low       double precision,          -- Wilson 95% interval of online_accuracy
    accuracy_high      double precision,
    window_minutes     integer NOT NULL,
    deadline_ms        integer NOT NULL,
    complete           boolean NOT NULL,          -- the newest event is past hour + 1 h + window
    computed_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hour, model_version, variant)
);
CREATE INDEX IF NOT EXISTS online_metrics_version_hour ON online_metrics (model_version, hour);
