-- Brook quick start: a stream of page views, a filtered stream derived from it, a table of
-- visits per user and hour, and a push query that prints the derived rows.
--
--   cargo run --release -p brook -- run examples/quickstart.sql
--
-- Without --bootstrap-servers this runs on an embedded broker that lives as long as the
-- process.

-- Read topics from their beginning, so the rows inserted below are processed.
SET 'auto.offset.reset' = 'earliest';

DEFINE pageviews_topic = 'pageviews';

CREATE STREAM pageviews (
  user_id STRING KEY,
  page STRING,
  duration_ms BIGINT,
  device STRUCT<os STRING, mobile BOOLEAN>
) WITH (kafka_topic = '${pageviews_topic}', value_format = 'JSON', partitions = 2);

INSERT INTO pageviews (user_id, page, duration_ms, device) VALUES ('alice', '/home', 1200, STRUCT(os := 'linux', mobile := false));
INSERT INTO pageviews (user_id, page, duration_ms, device) VALUES ('bob', '/pricing', 300, STRUCT(os := 'ios', mobile := true));
INSERT INTO pageviews (user_id, page, duration_ms, device) VALUES ('carol', '/docs', 4500, STRUCT(os := 'android', mobile := true));
INSERT INTO pageviews (user_id, page, duration_ms, device) VALUES ('alice', '/docs', 900, STRUCT(os := 'linux', mobile := false));

-- Long visits, with the duration in seconds and a label.
CREATE STREAM long_visits AS
  SELECT user_id,
         page,
         CAST(duration_ms AS DOUBLE) / 1000 AS seconds,
         CASE WHEN device->mobile THEN 'mobile' ELSE 'desktop' END AS kind
  FROM pageviews
  WHERE duration_ms >= 900 AND page LIKE '/%'
  EMIT CHANGES;

-- Visits per user and hour, kept up to date in a RocksDB store with a changelog topic.
CREATE TABLE visits_per_user AS
  SELECT user_id, COUNT(*) AS visits, SUM(duration_ms) AS total_ms
  FROM pageviews
  WINDOW TUMBLING (SIZE 1 HOUR)
  GROUP BY user_id
  EMIT CHANGES;

SELECT * FROM long_visits EMIT CHANGES LIMIT 3;
