use gateway_types::ids::TokenFamilyId;
use gateway_types::ids::UserId;
use gateway_types::model::{NewRefreshToken, NewUser, Page, Role, UserPatch};

use crate::harness::{
    TestDb, assert_conflict, assert_not_found, at, change, changes_since, contract, key, org, user,
};

contract!(
    crud_emails_and_conflicts,
    login_bookkeeping,
    tenant_isolation,
    delete_removes_keys_and_tokens
);

async fn crud_emails_and_conflicts(db: &TestDb) {
    let s = &db.stores().users;
    let o = org(db).await;
    let before = db.stores().changes.latest_id().await.unwrap();
    let u = s
        .create(
            o.id,
            NewUser {
                email: "Alice@Example.COM".into(),
                name: "Alice".into(),
                password_hash: "h".into(),
                role: Role::Admin,
            },
        )
        .await
        .unwrap();
    assert_eq!(u.email, "alice@example.com", "stored lower-cased");
    assert!(u.is_active);
    assert_eq!(
        (u.failed_logins, u.locked_until, u.last_login_at),
        (0, None, None)
    );
    assert_eq!(s.get(o.id, u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(
        s.find_by_email("ALICE@example.com").await.unwrap(),
        Some(u.clone())
    );
    assert_eq!(s.find_by_email("bob@example.com").await.unwrap(), None);

    // Emails are unique across organizations, whatever their case.
    let other = org(db).await;
    assert_conflict(
        s.create(
            other.id,
            NewUser {
                email: "alice@EXAMPLE.com".into(),
                name: "A2".into(),
                password_hash: "h".into(),
                role: Role::User,
            },
        )
        .await,
        "email",
    );

    user(db, o.id, "carol@example.com").await;
    user(db, o.id, "bob@example.com").await;
    let page = s.list(o.id, Page { offset: 0, limit: 2 }).await.unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(
        page.items.iter().map(|u| u.email.as_str()).collect::<Vec<_>>(),
        ["alice@example.com", "bob@example.com"]
    );

    let patched = s
        .update(
            o.id,
            u.id,
            UserPatch {
                role: Some(Role::Viewer),
                is_active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (patched.role, patched.is_active, patched.name.as_str()),
        (Role::Viewer, false, "Alice")
    );
    assert_not_found(s.update(o.id, UserId::new(), UserPatch::default()).await);

    let log: Vec<_> = changes_since(db, before)
        .await
        .into_iter()
        .filter(|c| c.1 == u.id.to_string())
        .collect();
    assert_eq!(
        log,
        [change("user", u.id, "create"), change("user", u.id, "update")]
    );
}

async fn login_bookkeeping(db: &TestDb) {
    let s = &db.stores().users;
    let o = org(db).await;
    let u = user(db, o.id, "login@example.com").await;
    let before = db.stores().changes.latest_id().await.unwrap();
    assert_eq!(s.record_login_failure(o.id, u.id, None).await.unwrap(), 1);
    assert_eq!(
        s.record_login_failure(o.id, u.id, Some(at(900))).await.unwrap(),
        2
    );
    let locked = s.get(o.id, u.id).await.unwrap().unwrap();
    assert_eq!((locked.failed_logins, locked.locked_until), (2, Some(at(900))));

    s.record_login_success(o.id, u.id, at(1000)).await.unwrap();
    let ok = s.get(o.id, u.id).await.unwrap().unwrap();
    assert_eq!(
        (ok.failed_logins, ok.locked_until, ok.last_login_at),
        (0, None, Some(at(1000)))
    );

    assert_not_found(s.record_login_success(o.id, UserId::new(), at(0)).await);
    assert_not_found(s.record_login_failure(o.id, UserId::new(), None).await);
    assert_eq!(
        changes_since(db, before).await,
        [],
        "login bookkeeping is not a configuration change"
    );
}

async fn tenant_isolation(db: &TestDb) {
    let s = &db.stores().users;
    let mine = org(db).await;
    let theirs = org(db).await;
    let u = user(db, theirs.id, "theirs@example.com").await;
    assert_eq!(s.get(mine.id, u.id).await.unwrap(), None);
    assert_eq!(s.list(mine.id, Page::default()).await.unwrap().total, 0);
    assert_not_found(
        s.update(
            mine.id,
            u.id,
            UserPatch {
                name: Some("x".into()),
                ..Default::default()
            },
        )
        .await,
    );
    assert_not_found(s.delete(mine.id, u.id).await);
    assert_not_found(s.record_login_success(mine.id, u.id, at(0)).await);
    assert_not_found(s.record_login_failure(mine.id, u.id, None).await);
    assert_eq!(s.get(theirs.id, u.id).await.unwrap().unwrap().failed_logins, 0);
}

async fn delete_removes_keys_and_tokens(db: &TestDb) {
    let st = db.stores();
    let o = org(db).await;
    let u = user(db, o.id, "gone@example.com").await;
    let k = key(db, o.id, "gone-key", Some(u.id)).await;
    st.refresh_tokens
        .create(
            o.id,
            NewRefreshToken {
                user_id: u.id,
                family_id: TokenFamilyId::new(),
                token_hash: "gone-rt".into(),
                expires_at: at(60),
            },
        )
        .await
        .unwrap();
    let before = st.changes.latest_id().await.unwrap();
    st.users.delete(o.id, u.id).await.unwrap();
    assert_eq!(st.users.get(o.id, u.id).await.unwrap(), None);
    assert_eq!(st.api_keys.find_by_hash("gone-key").await.unwrap(), None);
    assert_eq!(st.refresh_tokens.find_by_hash("gone-rt").await.unwrap(), None);
    assert_eq!(
        changes_since(db, before).await,
        [change("api_key", k.id, "delete"), change("user", u.id, "delete")]
    );
    assert_not_found(st.users.delete(o.id, u.id).await);
}
