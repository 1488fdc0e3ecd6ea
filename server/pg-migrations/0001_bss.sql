-- The BSS workload served through the read/write router (customers and orders).
CREATE TABLE IF NOT EXISTS customers (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    email      TEXT        NOT NULL CHECK (position('@' in email) > 1),
    plan       TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS orders (
    id          BIGSERIAL PRIMARY KEY,
    customer_id BIGINT      NOT NULL REFERENCES customers(id),
    items       JSONB       NOT NULL,
    total       NUMERIC(12, 2) NOT NULL CHECK (total >= 0),
    currency    TEXT        NOT NULL,
    state       TEXT        NOT NULL DEFAULT 'placed',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS orders_customer ON orders(customer_id);
