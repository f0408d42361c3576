// The shape `diesel print-schema` writes for migrations/*/ (both backends give
// the same diesel types). Keep it in step with the migrations.

diesel::table! {
    bindings (aor, contact) {
        aor -> Text,
        contact -> Text,
        q_value -> Nullable<Double>,
        expires_at -> BigInt,
        call_id -> Text,
        cseq -> BigInt,
        linphone_specs -> Nullable<Text>,
        params -> Nullable<Text>,
    }
}

diesel::table! {
    presentity_activity (aor) {
        aor -> Text,
        last_active -> BigInt,
    }
}

diesel::table! {
    publications (etag) {
        etag -> Text,
        aor -> Text,
        body -> Binary,
        content_type -> Text,
        expires_at -> BigInt,
        seq -> BigInt,
        event -> Text,
    }
}

diesel::table! {
    subscriptions (id) {
        id -> Text,
        aor -> Text,
        call_id -> Text,
        local_tag -> Text,
        remote_tag -> Text,
        event_id -> Nullable<Text>,
        accept -> Nullable<Text>,
        local_uri -> Text,
        remote_uri -> Text,
        remote_target -> Text,
        route_set -> Text,
        remote_cseq -> BigInt,
        notify_cseq_mark -> BigInt,
        state -> Text,
        document_version -> BigInt,
        expires_at -> BigInt,
        transport -> Text,
        local_addr -> Text,
        peer_addr -> Text,
        accept_encoding -> Nullable<Text>,
        list_source -> Nullable<Text>,
        list_members -> Nullable<Text>,
        linphone_compat -> Bool,
        mark_epoch -> BigInt,
        event -> Text,
    }
}

diesel::table! {
    store_epoch (id) {
        id -> Integer,
        epoch -> BigInt,
    }
}

diesel::table! {
    resource_list_members (list_uri, owner, member_uri) {
        list_uri -> Text,
        owner -> Text,
        member_uri -> Text,
        display_name -> Nullable<Text>,
        position -> Integer,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    bindings,
    presentity_activity,
    publications,
    resource_list_members,
    store_epoch,
    subscriptions
);
