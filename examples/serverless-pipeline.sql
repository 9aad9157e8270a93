-- The serverless pipeline: made-up users and stock trades (datagen source connectors),
-- the trades joined with the users into user_trades, and a sink connector that calls a
-- function with batches of user_trades.
--
--   python3 examples/function_server.py &          # the function, on 127.0.0.1:7071
--   cargo run --release -p brook -- run examples/serverless-pipeline.sql
--
-- Without --bootstrap-servers this runs on an embedded broker. The function prints each
-- record it gets; `brook run` runs until Ctrl-C.

SET 'auto.offset.reset' = 'earliest';

DEFINE function_url = 'http://127.0.0.1:7071/api/trades';

CREATE TABLE users (
  userid STRING PRIMARY KEY,
  registertime BIGINT,
  regionid STRING,
  gender STRING
) WITH (kafka_topic = 'users', value_format = 'JSON', partitions = 1);

CREATE STREAM stock_trades (
  symbol STRING KEY,
  side STRING,
  quantity INT,
  price INT,
  account STRING,
  userid STRING
) WITH (kafka_topic = 'stock_trades', value_format = 'JSON', partitions = 1);

-- Nine users, then a trade every 100 ms at most.
CREATE SOURCE CONNECTOR users_gen WITH (
  'connector.class' = 'DatagenSource',
  'kafka.topic' = 'users',
  'quickstart' = 'users',
  'max.interval' = '50',
  'iterations' = '50'
);

CREATE SOURCE CONNECTOR trades_gen WITH (
  'connector.class' = 'DatagenSource',
  'kafka.topic' = 'stock_trades',
  'quickstart' = 'stock_trades',
  'max.interval' = '100'
);

CREATE STREAM user_trades AS
  SELECT t.userid AS userid, u.regionid AS regionid, t.symbol AS symbol, t.side AS side,
         t.quantity AS quantity, t.price AS price
  FROM stock_trades t
  JOIN users u ON t.userid = u.userid
  EMIT CHANGES;

-- Batches of up to 100 records, up to 4 requests in flight; the key is a literal for the
-- local function (use '${env:FUNCTION_KEY}' or '${file:/path:key}' for a real one: the
-- reference is resolved when the tasks start and never stored resolved).
CREATE SINK CONNECTOR user_trades_fn WITH (
  'connector.class' = 'AzureFunctionsSink',
  'function.url' = '${function_url}',
  'function.key' = 'local-dev-key',
  'topics' = 'USER_TRADES',
  'max.batch.size' = '100',
  'max.pending.requests' = '4',
  'offset.flush.interval.ms' = '1000'
);
