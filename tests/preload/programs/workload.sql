-- workload.sql: inserts, index builds, deletes, updates and queries.
-- tests/preload/run.sh feeds it to sqlite3 with and without the preload
-- library; bench/preload/bench.sh times it. ROWS is substituted by the
-- caller (sed), 100000 by default.
PRAGMA journal_mode = MEMORY;
PRAGMA cache_size = -65536;
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, val REAL, payload BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ROWS)
INSERT INTO t SELECT x, 'name-' || (x * 7919 % ROWS) || '-' || substr('abcdefghijklmnopqrstuvwxyz', 1 + x % 26),
                     x % 97, (x * 31 % 1000) / 7.0, zeroblob(x % 200) FROM c;
CREATE INDEX t_name ON t(name);
CREATE INDEX t_grp_val ON t(grp, val);
SELECT count(*), sum(grp), round(sum(val), 3) FROM t;
DELETE FROM t WHERE id % 3 = 0;
UPDATE t SET name = upper(name), val = val * 2 WHERE grp < 40;
UPDATE t SET payload = zeroblob(300) WHERE id % 11 = 0;
SELECT count(*), count(DISTINCT name), round(avg(val), 4), sum(length(payload)) FROM t;
SELECT grp, count(*), round(max(val), 3) FROM t GROUP BY grp ORDER BY count(*) DESC, grp LIMIT 5;
SELECT name FROM t WHERE name LIKE 'NAME-1%' ORDER BY name LIMIT 5;
CREATE TABLE u AS SELECT grp, group_concat(name, ';') AS names FROM t GROUP BY grp;
SELECT count(*), sum(length(names)) FROM u;
DROP INDEX t_name;
REINDEX;
VACUUM;
PRAGMA integrity_check;
SELECT count(*) FROM t JOIN u USING (grp) WHERE t.id % 1000 = 1;
