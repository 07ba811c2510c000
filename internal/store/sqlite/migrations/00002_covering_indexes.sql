-- +goose Up
-- Counts read the status: keep it in the ordered indexes so that counting a
-- time range (or a domain's rows in it) reads the index only. And the
-- default traces filter on status (pending, quarantined, failed).
DROP INDEX rows_received;
DROP INDEX rows_sender_domain;
DROP INDEX rows_recipient_domain;
CREATE INDEX rows_received         ON rows (received DESC, mtid, recipient, status);
CREATE INDEX rows_sender_domain    ON rows (sender_domain, received DESC, mtid, recipient, status);
CREATE INDEX rows_recipient_domain ON rows (recipient_domain, received DESC, mtid, recipient, status);
CREATE INDEX rows_status           ON rows (status, received DESC, mtid, recipient);

-- +goose Down
DROP INDEX rows_status;
DROP INDEX rows_received;
DROP INDEX rows_sender_domain;
DROP INDEX rows_recipient_domain;
CREATE INDEX rows_received         ON rows (received DESC, mtid, recipient);
CREATE INDEX rows_sender_domain    ON rows (sender_domain, received DESC, mtid, recipient);
CREATE INDEX rows_recipient_domain ON rows (recipient_domain, received DESC, mtid, recipient);
