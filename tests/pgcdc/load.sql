\set id random(1, 300)
\set k random(1, 300)
BEGIN;
INSERT INTO acct (id, v) VALUES (:id, 1) ON CONFLICT (id) DO UPDATE SET v = acct.v + 1;
INSERT INTO hist (acct, delta) VALUES (:id, 1);
INSERT INTO acct (id, v) VALUES (:k, 1) ON CONFLICT (id) DO UPDATE SET v = acct.v + 1;
DELETE FROM acct WHERE id = (:id * 7) % 300 + 1;
COMMIT;
