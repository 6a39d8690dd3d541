//! The arena's ratings (issue #16) against known values: online Elo against a hand computation
//! (the formula of FastChat's `compute_online_elo`, evaluated step by step), the bootstrap
//! reproducible from its seed, and the Bradley–Terry fit recovering the order and the gaps of
//! simulated models whose win probabilities are known.

use cybergov::arena::decision::{UpgradeRule, decide};
use cybergov::arena::ratings::{
    Battle, INITIAL, Outcome, SplitMix64, bootstrap, bradley_terry, elo, impact,
};

fn battle(a: &str, b: &str, outcome: Outcome) -> Battle {
    Battle {
        a: a.into(),
        b: b.into(),
        outcome,
    }
}

#[test]
fn online_elo_matches_the_hand_computation_step_by_step() {
    use Outcome::*;
    let battles = [
        battle("alpha", "beta", A),
        battle("alpha", "beta", A),
        battle("beta", "alpha", Tie),
        battle("gamma", "alpha", B),
        battle("beta", "gamma", BothBad),
        battle("gamma", "beta", A),
    ];
    // Each step: E_a = 1 / (1 + 10^((R_b − R_a) / 400)), R_a += 4 (S_a − E_a), the same for b.
    let expected: [&[(&str, f64)]; 6] = [
        &[("alpha", 1002.0), ("beta", 998.0)],
        &[("alpha", 1003.9769751663554), ("beta", 996.0230248336446)],
        &[("alpha", 1003.9311965449899), ("beta", 996.0688034550101)],
        &[
            ("alpha", 1005.9085677242749),
            ("beta", 996.0688034550101),
            ("gamma", 998.022628820715),
        ],
        &[
            ("alpha", 1005.9085677242749),
            ("beta", 996.0800504593537),
            ("gamma", 998.0113818163713),
        ],
        &[
            ("alpha", 1005.9085677242749),
            ("beta", 994.0911679818225),
            ("gamma", 1000.0002642939025),
        ],
    ];
    for (n, want) in expected.iter().enumerate() {
        let got = elo(&battles[..=n], 4.0);
        assert_eq!(got.len(), want.len(), "after {} battles", n + 1);
        for (model, rating) in *want {
            let r = got[*model];
            assert!(
                (r - rating).abs() < 1e-9,
                "after {} battles, {model}: {r} ≠ {rating}",
                n + 1
            );
        }
    }
}

/// `n` battles between models of known strengths: `i` beats `j` with probability
/// `s_i / (s_i + s_j)`; a share `ties` of them are ties.
fn simulated(strengths: &[(&str, f64)], n: usize, ties: f64, seed: u64) -> Vec<Battle> {
    let mut rng = SplitMix64::new(seed);
    let unit = |rng: &mut SplitMix64| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    (0..n)
        .map(|_| {
            let i = rng.below(strengths.len());
            let j = (i + 1 + rng.below(strengths.len() - 1)) % strengths.len();
            let (a, sa) = strengths[i];
            let (b, sb) = strengths[j];
            let outcome = if unit(&mut rng) < ties {
                Outcome::Tie
            } else if unit(&mut rng) < sa / (sa + sb) {
                Outcome::A
            } else {
                Outcome::B
            };
            battle(a, b, outcome)
        })
        .collect()
}

#[test]
fn bradley_terry_recovers_the_order_and_gaps_of_known_strengths() {
    // Strengths 8 : 4 : 2 : 1 are 120-point gaps on the Elo scale (400·log10 2 ≈ 120.4).
    let strengths = [("strong", 8.0), ("good", 4.0), ("fair", 2.0), ("weak", 1.0)];
    // No ties: a tie scores half whatever the strengths, which pulls the fitted gaps together.
    let battles = simulated(&strengths, 8000, 0.0, 7);
    let fit = bradley_terry(&battles);
    let order = {
        let mut v: Vec<(&String, &f64)> = fit.iter().collect();
        v.sort_by(|a, b| b.1.total_cmp(a.1));
        v.into_iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>()
    };
    assert_eq!(order, ["strong", "good", "fair", "weak"], "{fit:?}");
    let gap = 400.0 * 2f64.log10();
    for pair in strengths.windows(2) {
        let d = fit[pair[0].0] - fit[pair[1].0];
        assert!((d - gap).abs() < 30.0, "{} − {}: {d}", pair[0].0, pair[1].0);
    }
    let mean = fit.values().sum::<f64>() / fit.len() as f64;
    assert!((mean - INITIAL).abs() < 1e-6, "{mean}");
}

#[test]
fn the_bootstrap_is_reproducible_from_its_seed_and_brackets_the_truth() {
    let strengths = [("candidate", 3.0), ("incumbent", 1.0)];
    let battles = simulated(&strengths, 300, 0.1, 11);
    let one = bootstrap(&battles, 4.0, 200, 42);
    assert_eq!(one, bootstrap(&battles, 4.0, 200, 42));
    assert_ne!(one, bootstrap(&battles, 4.0, 200, 43));
    for r in one.values() {
        assert!(r.low <= r.median && r.median <= r.high, "{r:?}");
    }
    // The candidate is three times as strong: its impact is positive and its interval says so.
    let gain = impact(&battles, "candidate", "incumbent", 4.0, 200, 42).unwrap();
    assert!(gain.low > 0.0, "{gain:?}");
    assert!(impact(&battles, "candidate", "absent", 4.0, 10, 42).is_none());
}

#[test]
fn the_upgrade_rule_needs_enough_battles_and_an_interval_above_zero() {
    let rule = UpgradeRule {
        min_battles: 100,
        rounds: 200,
        ..UpgradeRule::default()
    };
    // Three times as strong, but only 50 battles: no decision yet.
    let few = simulated(&[("candidate", 3.0), ("incumbent", 1.0)], 50, 0.1, 3);
    let d = decide(&few, "candidate", "incumbent", &rule);
    assert!(!d.replace && d.impact.is_none(), "{d:?}");
    assert!(d.reason.contains("fewer than the 100"), "{}", d.reason);
    // Three times as strong over 300 battles: replaced, on an interval above zero.
    let many = simulated(&[("candidate", 3.0), ("incumbent", 1.0)], 300, 0.1, 3);
    let d = decide(&many, "candidate", "incumbent", &rule);
    assert!(d.replace, "{d:?}");
    assert!(d.impact.as_ref().unwrap().low > 0.0);
    assert_eq!(d.battles, 300);
    // As strong as the incumbent: kept.
    let even = simulated(&[("candidate", 1.0), ("incumbent", 1.0)], 300, 0.1, 3);
    let d = decide(&even, "candidate", "incumbent", &rule);
    assert!(!d.replace, "{d:?}");
    assert!(d.reason.contains("keep incumbent"), "{}", d.reason);
    // Battles with a third model do not count.
    let mut mixed = even.clone();
    mixed.extend(simulated(
        &[("candidate", 9.0), ("other", 1.0)],
        300,
        0.0,
        4,
    ));
    assert_eq!(decide(&mixed, "candidate", "incumbent", &rule), d);
    // The record says what it was decided on.
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["schema"], "cybergov.arena-decision/v1");
    assert_eq!(json["rule"]["min_battles"], 100);
}

#[test]
fn the_rule_is_configured_and_a_bad_one_is_refused_by_name() {
    use cybergov::config::Config;
    let load = |k: &str, v: &str| {
        let vars = std::collections::BTreeMap::from([(k.to_owned(), v.to_owned())]);
        Config::load_from(None, &vars)
    };
    let c = load("CYBERGOV_ARENA__MIN_BATTLES", "250").unwrap();
    assert_eq!(c.arena.min_battles, 250);
    assert_eq!(c.arena.rounds, UpgradeRule::default().rounds);
    for (k, v, key) in [
        ("CYBERGOV_ARENA__K", "0", "arena.k"),
        ("CYBERGOV_ARENA__ROUNDS", "0", "arena.rounds"),
    ] {
        let e = load(k, v).unwrap_err().to_string();
        assert!(e.contains(key), "{e}");
    }
}

#[test]
fn agreement_with_real_endings_has_wilsons_interval() {
    use cybergov::arena::agreement::{Ending, agreement, wilson};
    use cybergov::manifest::VoteKind::{Abstain, Aye, Nay};
    // Textbook values: 8 of 10 is [0.490, 0.943] at 95 %; 0 of 5 starts at 0.
    let (low, high) = wilson(8, 10);
    assert!((low - 0.490_162_471_536_641_8).abs() < 1e-12, "{low}");
    assert!((high - 0.943_317_848_545_624_8).abs() < 1e-12, "{high}");
    assert_eq!(wilson(0, 5).0, 0.0);
    assert_eq!(wilson(0, 0), (0.0, 1.0));
    let endings = [
        "Approved", "Executed", "Rejected", "Rejected", "TimedOut", "Approved",
    ];
    let votes = [Aye, Aye, Nay, Aye, Nay, Abstain];
    let decisions: Vec<_> = votes
        .iter()
        .zip(endings)
        .map(|(v, e)| (*v, Ending::from_state(e)))
        .collect();
    let a = agreement(&decisions);
    assert_eq!(
        (a.compared, a.agreed, a.abstained, a.left_out),
        (4, 3, 1, 1)
    );
    assert_eq!(a.rate, 0.75);
    assert_eq!((a.low, a.high), wilson(3, 4));
}

/// `cybergov arena agreement` over a real run of the tiny jurors on the devnet, once Subsquare
/// says the referendum was approved: each juror's vote counted against that ending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agreement_command_counts_the_jurors_against_the_ending() {
    use crate::common::pipeline::{Backend, REF, World, toolkit_as};
    use cybergov::records::juror::JurorRecord;
    let w = World::new(Backend::Sqlite).await;
    w.run_ok(REF);
    let mut ended: serde_json::Value = serde_json::from_slice(&toolkit_as(REF)).unwrap();
    ended["state"]["name"] = "Approved".into();
    w.subsquare
        .add_referendum(REF, serde_json::to_vec(&ended).unwrap());
    // What the jurors voted, from their records.
    let jurors = w
        .store_path()
        .join(format!("proposals/polkadot/{REF}/runs/1/jurors"));
    let mut model = String::new();
    let (mut aye, mut nay, mut abstain) = (0, 0, 0);
    for entry in std::fs::read_dir(&jurors).unwrap() {
        let r: JurorRecord =
            serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap();
        model = r.model.model_id.clone();
        match r.vote {
            cybergov::manifest::VoteKind::Aye => aye += 1,
            cybergov::manifest::VoteKind::Nay => nay += 1,
            cybergov::manifest::VoteKind::Abstain => abstain += 1,
        }
    }
    assert_eq!(aye + nay + abstain, 3);
    let o = w
        .cybergov(&["arena", "agreement", "--network", "polkadot"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let row = out
        .lines()
        .find(|l| l.starts_with(&model))
        .unwrap_or_else(|| panic!("no row for {model}: {out}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], (aye + nay).to_string(), "compared: {row}");
    assert_eq!(cells[2], aye.to_string(), "agreed: {row}");
    assert_eq!(
        cells[cells.len() - 2],
        abstain.to_string(),
        "abstained: {row}"
    );
    assert_eq!(cells[cells.len() - 1], "0", "left out: {row}");
}

async fn battles_are_kept_once_and_read_back_in_order(backend: crate::common::pipeline::Backend) {
    use cybergov::pipeline::ledger::battles::BattleRow;
    use cybergov::pipeline::ledger::{Db, Ledger};
    let dir = tempfile::tempdir().unwrap();
    let db = crate::common::pipeline::TestDb::create(backend, dir.path()).await;
    let ledger = Ledger::open(Db::connect(&db.url).await.unwrap())
        .await
        .unwrap();
    let row = |round: i64, outcome: &str| BattleRow {
        session: "s-1".into(),
        round,
        reviewer: "reviewer".into(),
        created_at: 1_000 + round,
        network: "polkadot".into(),
        referendum: 1801,
        run: 1,
        model_a: if round % 2 == 0 { "cand" } else { "inc" }.into(),
        model_b: if round % 2 == 0 { "inc" } else { "cand" }.into(),
        outcome: outcome.into(),
    };
    for (round, outcome) in [(1, "b"), (2, "a"), (3, "tie")] {
        assert!(ledger.record_battle(&row(round, outcome)).await.unwrap());
    }
    // A retried write of round 2 with another outcome changes nothing.
    assert!(!ledger.record_battle(&row(2, "b")).await.unwrap());
    let rows = ledger.battles().await.unwrap();
    assert_eq!(rows, vec![row(1, "b"), row(2, "a"), row(3, "tie")]);
    let battles = cybergov::arena::battles(&rows).unwrap();
    // The candidate won rounds 1 (shown second) and 2 (shown first), then a tie.
    let r = elo(&battles, 4.0);
    assert!(r["cand"] > r["inc"], "{r:?}");
    let bad = cybergov::arena::battles(&[row(4, "draw")]).unwrap_err();
    assert!(bad.contains("round 4") && bad.contains("\"draw\""), "{bad}");

    // A session's prepared rounds: written all or none, read back in order by session.
    use cybergov::pipeline::ledger::battles::ArenaRoundRow;
    let prepared = |session: &str, round: i64| ArenaRoundRow {
        session: session.into(),
        round,
        reviewer: "reviewer".into(),
        created_at: 5_000,
        network: "kusama".into(),
        referendum: 9,
        run: 2,
        juror: "caspar".into(),
        candidate: "cand".into(),
        incumbent: "inc".into(),
        model_a: "inc".into(),
        model_b: "cand".into(),
        content_sha256: "ab".repeat(32),
        text_a: format!("first text of round {round} — ünïcode"),
        text_b: "second".into(),
    };
    let rounds = [prepared("s-2", 2), prepared("s-2", 1)];
    ledger.prepare_arena_rounds(&rounds).await.unwrap();
    assert_eq!(
        ledger.arena_rounds("s-2").await.unwrap(),
        [prepared("s-2", 1), prepared("s-2", 2)]
    );
    // A second preparation that repeats a round is refused whole: nothing of it is kept.
    let clash = [prepared("s-3", 1), prepared("s-2", 1)];
    assert!(ledger.prepare_arena_rounds(&clash).await.is_err());
    assert!(ledger.arena_rounds("s-3").await.unwrap().is_empty());
    assert_eq!(ledger.all_arena_rounds().await.unwrap().len(), 2);
    assert_eq!(ledger.session_battles("s-1").await.unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn battles_are_kept_once_on_sqlite() {
    battles_are_kept_once_and_read_back_in_order(crate::common::pipeline::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn battles_are_kept_once_on_postgres() {
    battles_are_kept_once_and_read_back_in_order(crate::common::pipeline::Backend::Postgres).await;
}
