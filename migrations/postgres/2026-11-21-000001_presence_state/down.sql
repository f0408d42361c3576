DROP TABLE bindings;
DROP TABLE publications;
DROP TABLE subscriptions;
