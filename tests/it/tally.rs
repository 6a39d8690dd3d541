//! The tally, over every combination of three votes, for every rule.

use cybergov::magi::settings::MagiConfig;
use cybergov::magi::tally::{Agreement, JurorVote, TallyRule, decide, tally};
use cybergov::manifest::VoteKind::{self, Abstain as X, Aye as A, Nay as N};
use cybergov::network::Network;

fn all_combinations() -> Vec<[VoteKind; 3]> {
    let kinds = [A, N, X];
    let mut out = Vec::new();
    for a in kinds {
        for b in kinds {
            for c in kinds {
                out.push([a, b, c]);
            }
        }
    }
    out
}

/// The default rule, written out independently of the implementation: unanimous → that vote;
/// two AYE (or NAY) and no vote the other way → that vote; anything else → ABSTAIN.
fn expected_default(v: &[VoteKind; 3]) -> (VoteKind, Agreement) {
    let n = |k| v.iter().filter(|x| **x == k).count();
    match (n(A), n(N), n(X)) {
        (3, 0, 0) => (A, Agreement::Unanimous),
        (0, 3, 0) => (N, Agreement::Unanimous),
        (0, 0, 3) => (X, Agreement::Unanimous),
        (2, 0, 1) => (A, Agreement::Majority),
        (0, 2, 1) => (N, Agreement::Majority),
        _ => (X, Agreement::None),
    }
}

#[test]
fn default_rule_over_all_27_combinations() {
    let combos = all_combinations();
    assert_eq!(combos.len(), 27);
    for v in combos {
        assert_eq!(
            decide(TallyRule::MajorityWithoutOpposition, &v),
            expected_default(&v),
            "{v:?}"
        );
    }
}

#[test]
fn simple_majority_and_unanimous_rules_over_all_combinations() {
    for v in all_combinations() {
        let n = |k| v.iter().filter(|x| **x == k).count();
        let (simple, _) = decide(TallyRule::SimpleMajority, &v);
        let want = if n(A) >= 2 {
            A
        } else if n(N) >= 2 {
            N
        } else {
            X
        };
        assert_eq!(simple, want, "simple majority {v:?}");
        let (unanimous, _) = decide(TallyRule::Unanimous, &v);
        let want = if n(A) == 3 {
            A
        } else if n(N) == 3 {
            N
        } else {
            X
        };
        assert_eq!(unanimous, want, "unanimous {v:?}");
    }
}

#[test]
fn the_whole_table_is_stable() {
    let mut table = String::new();
    for v in all_combinations() {
        let row: Vec<String> = [
            TallyRule::MajorityWithoutOpposition,
            TallyRule::SimpleMajority,
            TallyRule::Unanimous,
        ]
        .iter()
        .map(|r| format!("{:?}/{:?}", decide(*r, &v).0, decide(*r, &v).1))
        .collect();
        table.push_str(&format!("{v:?} -> {}\n", row.join("  ")));
    }
    insta::assert_snapshot!("tally_table", table);
}

#[test]
fn vote_record_carries_rule_conviction_balance_and_forced_abstain() {
    let cfg = MagiConfig::default().tally;
    let jurors = |votes: [VoteKind; 3]| {
        ["balthazar", "melchior", "caspar"]
            .iter()
            .zip(votes)
            .map(|(j, vote)| JurorVote {
                juror: (*j).into(),
                vote,
            })
            .collect::<Vec<_>>()
    };
    let r = tally(&cfg, Network::Kusama, 7, 1, jurors([A, A, A]), None);
    assert_eq!((r.decision, r.conviction), (A, cfg.conviction_unanimous));
    assert_eq!(r.balance, "1000000000000", "one KSM by default");
    assert_eq!(r.rule, "majority-without-opposition-v1");
    let r = tally(&cfg, Network::Kusama, 7, 1, jurors([N, N, X]), None);
    assert_eq!((r.decision, r.conviction), (N, cfg.conviction_majority));
    let r = tally(
        &cfg,
        Network::Kusama,
        7,
        1,
        jurors([A, A, A]),
        Some("only external links".into()),
    );
    assert_eq!((r.decision, r.conviction), (X, 0));
    assert_eq!(r.forced_abstain.as_deref(), Some("only external links"));
    assert_eq!(r.counts.aye, 3, "the jurors' votes stay on the record");
}

/// No juror decides nothing under every rule: "every juror voted AYE" must not hold vacuously
/// (a forged run with an empty jury would otherwise tally AYE).
#[test]
fn an_empty_jury_decides_abstain_under_every_rule() {
    for rule in TallyRule::ALL {
        assert_eq!(decide(rule, &[]), (X, Agreement::None), "{rule:?}");
    }
}
