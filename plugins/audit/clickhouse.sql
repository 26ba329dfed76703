-- A ClickHouse table for KEA audit records (HTTP sink with "format": "clickhouse").
-- Column names are the record's ECS keys. The sink inserts with input_format_skip_unknown_fields=1,
-- so keep only the columns you need; fields a record lacks get the column default.
CREATE TABLE IF NOT EXISTS kea_audit (
    `@timestamp` String,
    `event.outcome` String,
    `event.duration` UInt64,
    `http.request.id` String,
    `http.request.method` String,
    `http.request.body.bytes` UInt64,
    `http.request.body.content` String,
    `http.response.status_code` UInt16,
    `http.response.body.bytes` UInt64,
    `http.response.body.content` String,
    `url.domain` String,
    `url.path` String,
    `url.query` String,
    `client.ip` String,
    `user_agent.original` String,
    `user.id` String,
    `kea.session.id` String,
    `kea.auth.client` String,
    `kea.route` String,
    `kea.cache.status` String,
    `kea.validation.result` String,
    `kea.request.headers` Array(String),
    `kea.response.headers` Array(String)
) ENGINE = MergeTree ORDER BY `@timestamp`
