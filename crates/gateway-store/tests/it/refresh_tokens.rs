use gateway_types::ids::{RefreshTokenId, TokenFamilyId};
use gateway_types::model::NewRefreshToken;
use gateway_types::store::StoreError;

use crate::harness::{TestDb, assert_conflict, assert_not_found, at, contract, org, user};

contract!(
    create_and_find,
    rotation_and_reuse,
    family_and_user_revocation,
    expiry_and_isolation,
    concurrent_rotation_has_one_winner
);

fn token(
    user: gateway_types::ids::UserId,
    family: TokenFamilyId,
    hash: &str,
    expires: i64,
) -> NewRefreshToken {
    NewRefreshToken {
        user_id: user,
        family_id: family,
        token_hash: hash.into(),
        expires_at: at(expires),
    }
}

async fn create_and_find(db: &TestDb) {
    let s = &db.stores().refresh_tokens;
    let o = org(db).await;
    let u = user(db, o.id, "rt@example.com").await;
    let fam = TokenFamilyId::new();
    let t = s.create(o.id, token(u.id, fam, "t1", 60)).await.unwrap();
    assert_eq!(
        (t.user_id, t.family_id, t.expires_at, t.revoked_at, t.replaced_by),
        (u.id, fam, at(60), None, None)
    );
    assert_eq!(s.find_by_hash("t1").await.unwrap(), Some(t));
    assert_eq!(s.find_by_hash("t2").await.unwrap(), None);
    assert_conflict(s.create(o.id, token(u.id, fam, "t1", 60)).await, "refresh token");
}

async fn rotation_and_reuse(db: &TestDb) {
    let s = &db.stores().refresh_tokens;
    let o = org(db).await;
    let u = user(db, o.id, "rot@example.com").await;
    let fam = TokenFamilyId::new();
    let first = s.create(o.id, token(u.id, fam, "r1", 60)).await.unwrap();
    // The new token continues the old one's family even when the caller names another.
    let second = s
        .rotate(o.id, first.id, token(u.id, TokenFamilyId::new(), "r2", 120))
        .await
        .unwrap();
    assert_eq!(
        (
            second.family_id,
            second.user_id,
            second.expires_at,
            second.revoked_at
        ),
        (fam, u.id, at(120), None)
    );
    let old = s.find_by_hash("r1").await.unwrap().unwrap();
    assert!(old.revoked_at.is_some());
    assert_eq!(old.replaced_by, Some(second.id));

    // Reuse of a rotated token is a conflict, and nothing is stored for it.
    assert_conflict(
        s.rotate(o.id, first.id, token(u.id, fam, "r3", 60)).await,
        "refresh token",
    );
    assert_eq!(s.find_by_hash("r3").await.unwrap(), None);
    // The caller then revokes the family.
    assert_eq!(s.revoke_family(o.id, fam, at(5)).await.unwrap(), 1);
    assert_conflict(
        s.rotate(o.id, second.id, token(u.id, fam, "r4", 60)).await,
        "refresh token",
    );
    assert_not_found(
        s.rotate(o.id, RefreshTokenId::new(), token(u.id, fam, "r5", 60))
            .await,
    );
}

async fn family_and_user_revocation(db: &TestDb) {
    let s = &db.stores().refresh_tokens;
    let o = org(db).await;
    let u = user(db, o.id, "fam@example.com").await;
    let other_user = user(db, o.id, "fam2@example.com").await;
    let (f1, f2, f3) = (TokenFamilyId::new(), TokenFamilyId::new(), TokenFamilyId::new());
    let a = s.create(o.id, token(u.id, f1, "a", 60)).await.unwrap();
    s.create(o.id, token(u.id, f1, "b", 60)).await.unwrap();
    s.create(o.id, token(u.id, f2, "c", 60)).await.unwrap();
    s.create(o.id, token(u.id, f3, "d", 60)).await.unwrap();
    s.create(o.id, token(other_user.id, TokenFamilyId::new(), "e", 60))
        .await
        .unwrap();

    s.revoke(o.id, a.id, at(1)).await.unwrap();
    s.revoke(o.id, a.id, at(2)).await.unwrap();
    assert_eq!(
        s.find_by_hash("a").await.unwrap().unwrap().revoked_at,
        Some(at(1)),
        "revoke is idempotent"
    );
    assert_not_found(s.revoke(o.id, RefreshTokenId::new(), at(1)).await);

    assert_eq!(
        s.revoke_family(o.id, f1, at(3)).await.unwrap(),
        1,
        "only live tokens count"
    );
    assert_eq!(s.revoke_family(o.id, f1, at(3)).await.unwrap(), 0);
    assert_eq!(
        s.revoke_user(o.id, u.id, Some(f3), at(4)).await.unwrap(),
        1,
        "f2 only; f3 is kept"
    );
    assert_eq!(s.find_by_hash("d").await.unwrap().unwrap().revoked_at, None);
    assert_eq!(s.revoke_user(o.id, u.id, None, at(5)).await.unwrap(), 1);
    assert_eq!(
        s.find_by_hash("e").await.unwrap().unwrap().revoked_at,
        None,
        "other users untouched"
    );
}

async fn expiry_and_isolation(db: &TestDb) {
    let s = &db.stores().refresh_tokens;
    let o = org(db).await;
    let other = org(db).await;
    let u = user(db, o.id, "exp@example.com").await;
    let fam = TokenFamilyId::new();
    let t = s.create(o.id, token(u.id, fam, "old", 10)).await.unwrap();
    s.create(o.id, token(u.id, fam, "new", 100)).await.unwrap();

    // Another organization can neither create tokens for this user nor touch these tokens.
    assert_not_found(s.create(other.id, token(u.id, fam, "x", 10)).await);
    assert_not_found(s.revoke(other.id, t.id, at(1)).await);
    assert_not_found(s.rotate(other.id, t.id, token(u.id, fam, "y", 10)).await);
    assert_eq!(s.revoke_family(other.id, fam, at(1)).await.unwrap(), 0);
    assert_eq!(s.revoke_user(other.id, u.id, None, at(1)).await.unwrap(), 0);
    assert_eq!(s.find_by_hash("old").await.unwrap().unwrap().revoked_at, None);

    assert_eq!(s.delete_expired(at(50)).await.unwrap(), 1);
    assert_eq!(s.find_by_hash("old").await.unwrap(), None);
    assert!(s.find_by_hash("new").await.unwrap().is_some());
}

async fn concurrent_rotation_has_one_winner(db: &TestDb) {
    let s = db.stores().refresh_tokens.clone();
    let o = org(db).await;
    let u = user(db, o.id, "race@example.com").await;
    let fam = TokenFamilyId::new();
    let t = s.create(o.id, token(u.id, fam, "race", 60)).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..6 {
        let s = s.clone();
        tasks.spawn(async move {
            s.rotate(o.id, t.id, token(u.id, fam, &format!("race-{i}"), 60))
                .await
        });
    }
    let (mut won, mut conflicts) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::Conflict { .. }) => conflicts += 1,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!((won, conflicts), (1, 5));
}
