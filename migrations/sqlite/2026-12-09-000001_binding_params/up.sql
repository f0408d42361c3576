-- A binding's Contact header parameters besides expires and q (+sip.instance, reg-id, …), as
-- sent: the reg event package (RFC 3680) reports them as unknown-param.

ALTER TABLE bindings ADD COLUMN params TEXT;
