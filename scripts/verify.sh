#!/bin/sh
# cybergov public verifier. Needs only a POSIX shell, curl, jq, sha256sum, b2sum and od.
#
#   scripts/verify.sh --network N --id ID --real 0xPUBKEY [--run R] [--base-url URL]
#                     [--rpc-url URL] [--from-block N] [--to-block N] [--max-blocks N]
#                     [--allow-unvoted]
#   scripts/verify.sh --arena N|latest [--base-url URL]
#
# Fetches latest.json and the run's manifest from the public base URL, checks the manifest's
# bytes hash to the recorded hash, re-hashes every artefact it lists, checks that the run agrees
# with itself (each juror's vote follows from its scores, the tally from the jurors, the
# decision from the tally, the comment states the decision), then finds the vote on chain
# itself over JSON-RPC, never from the store: the account's standing vote on the referendum
# (ConvictionVoting.VotingFor) must be the manifest's decision, and a block in the searched
# range must hold an extrinsic carrying this manifest's remark, with the System.Remarked event
# of that remark and the account's ConvictionVoting.Voted event (receipt.json, if present, only
# says which block to search first).
#
# Prints "PASS <check>: <detail>", "FAIL <check>: <why>" or "NOT VOTED <check>: <why>" per
# check (the same check names as `cybergov verify`), then the verdict: PASS, NOT VOTED (the run
# agrees with itself but is not on chain) or FAIL. Exits 0 on PASS, 1 on FAIL, 2 on bad usage,
# 3 on NOT VOTED (0 with --allow-unvoted, for dry runs).

set -u

usage() {
    cat >&2 <<'USAGE'
usage: verify.sh --network polkadot|kusama|paseo --id REFERENDUM --real 0xPUBLIC_KEY
                 [--run RUN] [--base-url URL] [--rpc-url URL]
                 [--from-block N] [--to-block N] [--max-blocks N] [--allow-unvoted]
  --real           the account whose vote it is (the proxy's real account), as its 32-byte
                   public key in hex (`subkey inspect ADDRESS` prints it)
  --base-url       where the store's keys are served (default: $CYBERGOV_PUBLIC_BASE_URL)
  --rpc-url        JSON-RPC over HTTP of the network's Asset Hub (default: the public one)
  --from-block     first block searched for the vote (default: --max-blocks below the last)
  --to-block       last block searched (default: the best block)
  --max-blocks     how many blocks to search without --from-block (default: 50000)
  --allow-unvoted  exit 0 on NOT VOTED: a dry run's artefacts, with no vote on chain
       verify.sh --arena N|latest [--base-url URL]
  --arena          an arena publication (arena/N/, or latest) instead of a vote: manifest,
                   hashes, each model's online Elo and each decision recomputed from the battles
USAGE
    exit "$1"
}

die() {
    printf 'verify.sh: %s\n' "$1" >&2
    exit 2
}

NETWORK=
ID=
RUN=
BASE_URL=${CYBERGOV_PUBLIC_BASE_URL:-}
RPC_URL=
REAL=
FROM_BLOCK=
TO_BLOCK=
MAX_BLOCKS=50000
ALLOW_UNVOTED=
ARENA= LPUB= LHASH=
while [ $# -gt 0 ]; do
    case $1 in
        --network | --id | --run | --base-url | --rpc-url | --real | --from-block | --to-block | --max-blocks | --arena)
            [ $# -ge 2 ] || die "$1 needs a value"
            case $1 in
                --network) NETWORK=$2 ;;
                --id) ID=$2 ;;
                --run) RUN=$2 ;;
                --base-url) BASE_URL=$2 ;;
                --rpc-url) RPC_URL=$2 ;;
                --real) REAL=$2 ;;
                --from-block) FROM_BLOCK=$2 ;;
                --to-block) TO_BLOCK=$2 ;;
                --max-blocks) MAX_BLOCKS=$2 ;;
                --arena) ARENA=$2 ;;
            esac
            shift 2
            ;;
        --network=*) NETWORK=${1#*=}; shift ;;
        --id=*) ID=${1#*=}; shift ;;
        --run=*) RUN=${1#*=}; shift ;;
        --base-url=*) BASE_URL=${1#*=}; shift ;;
        --rpc-url=*) RPC_URL=${1#*=}; shift ;;
        --real=*) REAL=${1#*=}; shift ;;
        --from-block=*) FROM_BLOCK=${1#*=}; shift ;;
        --to-block=*) TO_BLOCK=${1#*=}; shift ;;
        --max-blocks=*) MAX_BLOCKS=${1#*=}; shift ;;
        --arena=*) ARENA=${1#*=}; shift ;;
        --allow-unvoted) ALLOW_UNVOTED=1; shift ;;
        -h | --help) usage 0 ;;
        *) printf 'verify.sh: unknown argument %s\n' "$1" >&2; usage 2 ;;
    esac
done

case $ARENA in latest | '') ;; *[!0-9]* | 0) die "--arena must be a publication number (1 or more) or latest" ;; esac
if [ -z "$ARENA" ]; then
    case $NETWORK in
        polkadot) DEFAULT_RPC=https://polkadot-asset-hub-rpc.polkadot.io ;;
        kusama) DEFAULT_RPC=https://kusama-asset-hub-rpc.polkadot.io ;;
        paseo) DEFAULT_RPC= ;;
        '') die "--network is required" ;;
        *) die "unknown network $NETWORK: expected polkadot, kusama or paseo" ;;
    esac
    case $ID in '' | *[!0-9]*) die "--id must be a referendum index (digits)" ;; esac
    case $RUN in *[!0-9]* | 0) die "--run must be a run number (1 or more)" ;; esac
    for n in "$FROM_BLOCK" "$TO_BLOCK" "$MAX_BLOCKS"; do
        case $n in *[!0-9]*) die "block numbers and --max-blocks are digits" ;; esac
    done
fi
[ -n "$BASE_URL" ] || die "--base-url is required (or set CYBERGOV_PUBLIC_BASE_URL)"
case $BASE_URL in http://* | https://*) ;; *) die "--base-url must be an http(s) URL" ;; esac
BASE_URL=${BASE_URL%/}
if [ -z "$ARENA" ]; then
    [ -n "$REAL" ] || die "--real is required: whose vote is it? (the account's public key in hex)"
    REAL=$(printf '%s' "${REAL#0x}" | tr '[:upper:]' '[:lower:]')
    case $REAL in *[!0-9a-f]*) die "--real must be a 32-byte public key in hex (0x + 64 digits)" ;; esac
    [ ${#REAL} -eq 64 ] || die "--real must be a 32-byte public key in hex (0x + 64 digits)"
    [ -n "$RPC_URL" ] || RPC_URL=$DEFAULT_RPC
    [ -n "$RPC_URL" ] || die "--rpc-url is required for $NETWORK"
    case $RPC_URL in http://* | https://*) ;; *) die "--rpc-url must be an http(s) JSON-RPC URL" ;; esac
fi

for tool in curl jq sha256sum b2sum od; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done

TMP=$(mktemp -d 2>/dev/null) || TMP=${TMPDIR:-/tmp}/cybergov-verify.$$
mkdir -p "$TMP" || die "cannot create a temporary folder"
trap 'rm -rf "$TMP"' EXIT
trap 'exit 2' HUP INT TERM

FAILS=0
UNVOTED=0
pass() { printf 'PASS %s: %s\n' "$1" "$2"; }
fail() {
    printf 'FAIL %s: %s\n' "$1" "$2"
    FAILS=$((FAILS + 1))
}
unvoted() {
    printf 'NOT VOTED %s: %s\n' "$1" "$2"
    UNVOTED=$((UNVOTED + 1))
}
finish() {
    if [ "$FAILS" -gt 0 ]; then
        echo "FAIL ($FAILS failed)"
        exit 1
    fi
    if [ "$UNVOTED" -gt 0 ]; then
        echo "NOT VOTED"
        [ -n "$ALLOW_UNVOTED" ] && exit 0
        exit 3
    fi
    echo PASS
    exit 0
}

# get URL FILE: downloads; GOT is ok, missing, or what went wrong.
get() {
    if ! code=$(curl -sS -L --max-time 120 -o "$2" -w '%{http_code}' "$1" 2>"$TMP/curl.err"); then
        GOT="unreachable: $(head -n 1 "$TMP/curl.err")"
        return 1
    fi
    case $code in
        2??) GOT=ok; return 0 ;;
        404) GOT=missing; return 1 ;;
        *) GOT="HTTP $code"; return 1 ;;
    esac
}
sha() { sha256sum "$1" | cut -d ' ' -f 1; }
size() { wc -c <"$1" | tr -d ' '; }
# check_artefact NAME PATH SHA256 BYTES: fetches PATH into $TMP/artefact and compares; 0 if fetched.
check_artefact() {
    get "$BASE_URL/$2" "$TMP/artefact" || {
        if [ "$GOT" = missing ]; then fail "artefact $1" "$2 is missing"; else fail "artefact $1" "$BASE_URL/$2: $GOT"; fi
        return 1
    }
    got=$(sha "$TMP/artefact")
    n=$(size "$TMP/artefact")
    if [ "$got" = "$3" ] && [ "$n" = "$4" ]; then pass "artefact $1" "$n bytes, sha256 $got"
    else fail "artefact $1" "$2 has $n bytes with sha256 $got; the manifest lists $4 bytes with sha256 $3"; fi
}
verdict_line() {
    case $2 in
        "PASS "*) pass "$1" "${2#PASS }" ;;
        "FAIL "*) fail "$1" "${2#FAIL }" ;;
        *) fail "$1" "cannot be checked: $2" ;;
    esac
}

if [ -n "$ARENA" ]; then # an arena publication: latest.json → manifest → artefacts → recomputed
    if get "$BASE_URL/arena/latest.json" "$TMP/latest.json"; then
        LPUB=$(jq -er '.publication | tostring' "$TMP/latest.json" 2>/dev/null)
        LHASH=$(jq -er '.manifest_sha256' "$TMP/latest.json" 2>/dev/null)
        [ -n "$LPUB" ] && [ -n "$LHASH" ] || fail latest.json "arena/latest.json is not valid"
    elif [ "$GOT" != missing ]; then
        fail latest.json "$BASE_URL/arena/latest.json: $GOT"
    fi
    [ "$ARENA" = latest ] && ARENA=$LPUB
    [ -n "$ARENA" ] || { fail latest.json "arena/latest.json is missing: no publication to verify" && finish; }
    AP=arena/$ARENA
    if ! get "$BASE_URL/$AP/manifest.json" "$TMP/manifest.json"; then
        fail manifest.json "$AP/manifest.json: $GOT"
        finish
    fi
    H=$(sha "$TMP/manifest.json")
    if [ "$ARENA" != "$LPUB" ]; then
        pass "manifest hash" "$H (publication $ARENA is not the latest)"
    elif [ "$H" = "$LHASH" ]; then
        pass "manifest hash" "$H matches arena/latest.json"
    else
        fail "manifest hash" "manifest.json hashes to $H, arena/latest.json records $LHASH"
    fi
    if jq -cjS . "$TMP/manifest.json" >"$TMP/canonical.json" 2>/dev/null &&
        [ "$(sha "$TMP/canonical.json")" = "$H" ] &&
        jq -e --arg n "$ARENA" '.schema == "cybergov.arena-manifest/v1" and (.publication | tostring) == $n' \
            "$TMP/manifest.json" >/dev/null 2>&1; then
        pass "manifest format" "valid, canonical, publication $ARENA"
    else
        fail "manifest format" "not the canonical cybergov.arena-manifest/v1 of publication $ARENA"
    fi
    for name in battles.json ratings.json decisions.json; do
        line=$(jq -r --arg n "$name" '[.artefacts[]? | select(.name == $n)] | if length == 1 then .[0] | "\(.path) \(.sha256) \(.bytes)" else "" end' "$TMP/manifest.json" 2>/dev/null)
        read -r path want bytes <<EOF
$line
EOF
        if [ -z "$line" ]; then
            fail "artefact $name" "the manifest lists it not exactly once"
        elif [ "$path" != "$AP/$name" ]; then
            fail "artefact $name" "listed at $path, not $AP/$name"
        elif check_artefact "$name" "$path" "$want" "$bytes"; then
            cp "$TMP/artefact" "$TMP/$name"
        fi
    done
    [ "$FAILS" -eq 0 ] || finish
    # Online Elo, step by step as arena/ratings.rs computes it.
    verdict_elo=$(jq -rn --slurpfile b "$TMP/battles.json" --slurpfile r "$TMP/ratings.json" '
        $r[0] as $r | $b[0].battles as $bs
        | (reduce $bs[] as $x ({};
            (.[$x.model_a] // 1000) as $ra | (.[$x.model_b] // 1000) as $rb
            | (if $x.outcome == "a" then 1 elif $x.outcome == "b" then 0 else 0.5 end) as $sa
            | .[$x.model_a] = $ra + $r.k * ($sa - 1 / (1 + pow(10; ($rb - $ra) / 400)))
            | .[$x.model_b] = $rb + $r.k * (1 - $sa - 1 / (1 + pow(10; ($ra - $rb) / 400))))) as $elo
        | if $r.battles != ($bs | length) then "FAIL ratings.json rates \($r.battles) battles, battles.json holds \($bs | length)"
          elif ([$r.models[].model] | sort) != ($elo | keys) then "FAIL ratings.json rates other models than the battles have"
          else [$r.models[] | select(((.elo - $elo[.model]) | fabs) > 1e-6) | .model] as $off
            | if ($off | length) == 0 then "PASS \($elo | length) models, recomputed from \($bs | length) battles"
              else "FAIL the online Elo of \($off | join(", ")) is not what the battles give" end end' 2>&1)
    verdict_line "online Elo" "$verdict_elo"
    # Each decision: its battles counted, and the rule applied to its interval.
    verdict_rule=$(jq -rn --slurpfile b "$TMP/battles.json" --slurpfile d "$TMP/decisions.json" '
        $b[0].battles as $bs
        | ([$bs[] | select(.candidate != null) | [.candidate, .incumbent]] | unique) as $pairs
        | if ([$d[0].decisions[] | [.candidate, .incumbent]] | sort) != $pairs then
            "FAIL the decisions are not one per prepared pair of the battles"
          else [$d[0].decisions[] | . as $x
            | ([$bs[] | select([.model_a, .model_b] | sort == ([$x.candidate, $x.incumbent] | sort))] | length) as $n
            | (($n >= $x.rule.min_battles) and $x.impact != null and $x.impact.low > 0) as $replace
            | if $n != $x.battles then "\($x.candidate): counts \($x.battles) battles, battles.json holds \($n)"
              elif $replace != $x.replace then "\($x.candidate): the rule gives replace \($replace), the decision says \($x.replace)"
              else empty end] as $bad
            | if ($bad | length) == 0 then "PASS \($d[0].decisions | length) decisions follow the rule from their battles"
              else "FAIL \($bad | join("; "))" end end' 2>&1)
    verdict_line "decisions" "$verdict_rule"
    echo "NOTE the bootstrap intervals and the Bradley-Terry fit are recomputed by cybergov arena verify"
    finish
fi

PREFIX=proposals/$NETWORK/$ID

# latest.json: which run, and its manifest hash.
EXPECTED=
if get "$BASE_URL/$PREFIX/latest.json" "$TMP/latest.json"; then
    if LRUN=$(jq -er '.run | tostring' "$TMP/latest.json" 2>/dev/null) &&
        LHASH=$(jq -er '.manifest_sha256' "$TMP/latest.json" 2>/dev/null); then
        if [ -z "$RUN" ]; then RUN=$LRUN; fi
        if [ "$RUN" = "$LRUN" ]; then EXPECTED=$LHASH; fi
    else
        fail latest.json "$PREFIX/latest.json is not valid latest.json"
    fi
elif [ "$GOT" != missing ]; then
    fail latest.json "$BASE_URL/$PREFIX/latest.json: $GOT"
fi
if [ -z "$RUN" ]; then
    fail latest.json "$PREFIX/latest.json is missing: no run to verify"
    finish
fi
RUN_PREFIX=$PREFIX/runs/$RUN

# The manifest: its bytes are what the chain commits to.
if ! get "$BASE_URL/$RUN_PREFIX/manifest.json" "$TMP/manifest.json"; then
    if [ "$GOT" = missing ]; then GOT="$RUN_PREFIX/manifest.json is missing"; fi
    fail manifest.json "$GOT"
    finish
fi
H=$(sha "$TMP/manifest.json")
if [ -z "$EXPECTED" ]; then
    pass "manifest hash" "$H (run $RUN is not the latest; compare with the chain)"
elif [ "$H" = "$EXPECTED" ]; then
    pass "manifest hash" "$H matches latest.json"
else
    fail "manifest hash" "manifest.json hashes to $H, latest.json records $EXPECTED"
fi
if ! jq -e '.schema == "cybergov.manifest/v1"' "$TMP/manifest.json" >/dev/null 2>&1; then
    fail "manifest format" "not a cybergov.manifest/v1 JSON document"
    finish
fi
# Canonical form: sorted keys, no whitespace (what the hash was taken over).
if jq -cjS . "$TMP/manifest.json" >"$TMP/canonical.json" 2>/dev/null &&
    [ "$(sha "$TMP/canonical.json")" = "$H" ]; then
    pass "manifest format" "valid, canonical v1"
else
    fail "manifest format" "manifest bytes are not canonical JSON (re-serialized, they differ)"
fi
WHERE=$(jq -r '"\(.network) #\(.referendum) run \(.run)"' "$TMP/manifest.json")
if [ "$WHERE" = "$NETWORK #$ID run $RUN" ]; then
    pass "manifest location" "$WHERE"
else
    fail "manifest location" "stored as $NETWORK #$ID run $RUN but describes $WHERE"
fi

# Where the jurors ran: one public workflow run per manifest is what a reader can check.
jq -r '.provenance as $p
    | if $p.runner == "github-actions" and $p.runner_run_id != null then
        "NOTE inference ran in GitHub Actions run \($p.repository | rtrimstr("/"))/actions/runs/\($p.runner_run_id), attempt \($p.runner_attempt // 1)\(if ($p.runner_attempt // 1) > 1 then " — the workflow was re-run" else "" end); it should be the only run named for \(.network) #\(.referendum) run \(.run)"
      else "NOTE inference ran on the \($p.runner) runner, which leaves no public record: only cybergov verify --reexecute can check the jurors" end' \
    "$TMP/manifest.json" 2>/dev/null || true

# Every listed artefact: fetch, re-hash, compare length and hash.
TAB=$(printf '\t')
jq -r '(.inputs + .outputs + [.models[].arena_decision | values])[] | "\(.name)\t\(.path)\t\(.sha256)\t\(.bytes)"' \
    "$TMP/manifest.json" >"$TMP/artefacts.tsv"
while IFS=$TAB read -r name path want bytes; do
    case $path in
        "$RUN_PREFIX"/* | arena/[0-9]*/decisions.json) ;;
        *) fail "artefact $name" "$path lies outside this run's folder $RUN_PREFIX/"; continue ;;
    esac
    case $path in
        *..* | *//* | *' '*) fail "artefact $name" "invalid path $path"; continue ;;
    esac
    check_artefact "$name" "$path" "$want" "$bytes"
done <"$TMP/artefacts.tsv"
# A model seated by the arena: its decisions must replace a juror's model with this one.
jq -r '.models[] | select(.arena_decision) | "\(.juror)\t\(.model_id)\t\(.arena_decision.path)"' "$TMP/manifest.json" >"$TMP/seated.tsv"
while IFS=$TAB read -r juror model path; do
    if get "$BASE_URL/$path" "$TMP/decisions.json" && jq -e --arg m "$model" '.decisions | any(.replace and .candidate == $m)' "$TMP/decisions.json" >/dev/null 2>&1; then pass "arena decision $juror" "$path seats $model"
    else fail "arena decision $juror" "$path holds no decision replacing a juror's model with $model"; fi
done <"$TMP/seated.tsv"

# The hash chain over re-votes: `previous` is the nearest earlier run's manifest hash.
PREV=$(jq -r '.previous // ""' "$TMP/manifest.json")
r=$((RUN - 1))
FOUND=
while [ "$r" -ge 1 ]; do
    if get "$BASE_URL/$PREFIX/runs/$r/manifest.json" "$TMP/previous.json"; then
        FOUND="$r $(sha "$TMP/previous.json")"
        break
    elif [ "$GOT" != missing ]; then
        FOUND="error $GOT"
        break
    fi
    r=$((r - 1))
done
case $FOUND in
    '') [ -z "$PREV" ] || fail "previous manifest" "the nearest earlier manifest is none, this manifest records $PREV" ;;
    error*) fail "previous manifest" "run $r: ${FOUND#error }" ;;
    *" $PREV") pass "previous manifest" "run ${FOUND% *} hashes to $PREV" ;;
    *) fail "previous manifest" "the nearest earlier manifest is run ${FOUND% *} with sha256 ${FOUND#* }, this manifest records ${PREV:-none}" ;;
esac

# Does the run agree with itself? Each juror's vote must follow from its own scores, vote.json
# must be the tally of those votes under its rule, and the manifest must record that decision:
# a run rewritten with every hash fixed still fails here unless its reasoning holds.
upper() { printf '%s' "$1" | tr '[:lower:]' '[:upper:]'; }
verdict_line jury "$(jq -r '
    ([.models[].juror | "jurors/\(.).json"] | sort) as $m
    | ([.outputs[].name | select(startswith("jurors/"))] | sort) as $f
    | def names: if length == 0 then "none" else join(", ") end;
      if ($m | length) == 0 then "FAIL the manifest names no juror: an empty jury decides nothing"
      elif ($m | unique | length) != ($m | length) then "FAIL the manifest names a juror twice"
      elif $m != $f then "FAIL the models are \($m | names) but the juror files are \($f | names)"
      else "PASS \($m | length) jurors, one file each" end' "$TMP/manifest.json" 2>&1)"

CHOOSE='[.scores[] | select(.option == "AYE" or .option == "NAY" or .option == "ABSTAIN")] as $s
    | if ($s | length) == 0 then "abstain"
      else ($s | map(.logprob) | max) as $m | [$s[] | select(.logprob == $m)]
        | if length == 1 then (.[0].option | ascii_downcase) else "abstain" end end'
: >"$TMP/juror-votes.tsv"
jq -r '.models[].juror' "$TMP/manifest.json" >"$TMP/jurors.txt"
while read -r name; do
    path=$RUN_PREFIX/jurors/$name.json
    if ! get "$BASE_URL/$path" "$TMP/juror.json"; then
        fail "juror $name vote" "$path: $GOT"
        continue
    fi
    if ! J=$(jq -r "\"\(.juror)\t\(.vote)\t\($CHOOSE)\"" "$TMP/juror.json" 2>/dev/null); then
        fail "juror $name vote" "$path cannot be read as a juror file"
        continue
    fi
    juror=$(printf '%s' "$J" | cut -f 1)
    voted=$(printf '%s' "$J" | cut -f 2)
    follows=$(printf '%s' "$J" | cut -f 3)
    if [ "$juror" != "$name" ]; then
        fail "juror $name vote" "$path is juror $juror's record"
    elif [ "$voted" = "$follows" ]; then
        pass "juror $name vote" "$(upper "$voted") follows from its scores"
    else
        fail "juror $name vote" "records $(upper "$voted") but its own scores give $(upper "$follows")"
    fi
    printf '%s\t%s\n' "$juror" "$voted" >>"$TMP/juror-votes.tsv"
done <"$TMP/jurors.txt"

U_DECIDED=
if get "$BASE_URL/$RUN_PREFIX/vote.json" "$TMP/vote.json" &&
    jq -e '.decision and .rule and .jurors' "$TMP/vote.json" >/dev/null 2>&1; then
    LISTED=$(jq -r '.jurors[] | "\(.juror)\t\(.vote)"' "$TMP/vote.json" | sort)
    FOUND_VOTES=$(sort "$TMP/juror-votes.tsv")
    TALLY=$(jq -r '
        [.jurors[].vote] as $v | ($v | length) as $n
        | ([$v[] | select(. == "aye")] | length) as $aye
        | ([$v[] | select(. == "nay")] | length) as $nay
        | ([$v[] | select(. == "abstain")] | length) as $abs
        | def allowed($for; $against):
            (2 * $for > $n) as $maj
            | if .rule == "majority-without-opposition-v1" then $maj and $against == 0
              elif .rule == "simple-majority-v1" then $maj
              else false end;
          if .rule != "majority-without-opposition-v1" and .rule != "simple-majority-v1"
             and .rule != "unanimous-v1" then "unknown rule \(.rule)"
          elif .forced_abstain != null then "abstain"
          elif $n == 0 then "abstain"
          elif $abs == $n then "abstain"
          elif $aye == $n then "aye"
          elif $nay == $n then "nay"
          elif allowed($aye; $nay) then "aye"
          elif allowed($nay; $aye) then "nay"
          else "abstain" end' "$TMP/vote.json")
    DECIDED=$(jq -r '.decision' "$TMP/vote.json")
    RULE=$(jq -r '.rule' "$TMP/vote.json")
    U_DECIDED=$(upper "$DECIDED")
    if [ -z "$LISTED" ]; then
        fail tally "vote.json tallies no juror"
    elif [ "$LISTED" != "$FOUND_VOTES" ]; then
        fail tally "vote.json's juror votes are not the juror files' votes"
    elif [ "$TALLY" = "$DECIDED" ]; then
        pass tally "$U_DECIDED under $RULE"
    else
        fail tally "vote.json decides $U_DECIDED but its jurors' votes give $(upper "$TALLY") under $RULE"
    fi

    # A forced ABSTAIN must be the hashed augment.json's policy, and nothing else.
    POLICY=
    POLICY_OK=1
    if jq -e '.inputs[] | select(.name == "augment.json")' "$TMP/manifest.json" >/dev/null 2>&1; then
        if get "$BASE_URL/$RUN_PREFIX/augment.json" "$TMP/augment.json" &&
            POLICY=$(jq -er '.abstain.reason // ""' "$TMP/augment.json" 2>/dev/null); then
            :
        else
            POLICY_OK=
            fail "forced abstain" "$RUN_PREFIX/augment.json cannot be read"
        fi
        AUGMENT_LISTED=1
    else
        AUGMENT_LISTED=
    fi
    FORCED=$(jq -r '.forced_abstain // ""' "$TMP/vote.json")
    if [ -z "$POLICY_OK" ]; then
        :
    elif [ -z "$POLICY" ] && [ -z "$FORCED" ]; then
        pass "forced abstain" "no policy forced ABSTAIN, and none was forced"
    elif [ "$POLICY" = "$FORCED" ]; then
        pass "forced abstain" "augment.json forced it: $POLICY"
    elif [ -n "$POLICY" ] && [ -n "$FORCED" ]; then
        fail "forced abstain" "vote.json gives \"$FORCED\", augment.json \"$POLICY\""
    elif [ -n "$POLICY" ]; then
        fail "forced abstain" "augment.json forces ABSTAIN ($POLICY) but vote.json does not"
    elif [ -n "$AUGMENT_LISTED" ]; then
        fail "forced abstain" "vote.json forces ABSTAIN ($FORCED) but augment.json's policy did not"
    else
        fail "forced abstain" "vote.json forces ABSTAIN ($FORCED) but the manifest lists no augment.json"
    fi

    if jq -e --slurpfile m "$TMP/manifest.json" '
        .decision == $m[0].decision.vote and .conviction == $m[0].decision.conviction
        and .balance == $m[0].decision.balance' "$TMP/vote.json" >/dev/null; then
        pass decision "the manifest's decision is vote.json's ($U_DECIDED)"
    else
        fail decision "the manifest says $(jq -r '.decision | "\(.vote | ascii_upcase) (conviction \(.conviction), balance \(.balance))"' "$TMP/manifest.json"), vote.json $U_DECIDED (conviction $(jq -r .conviction "$TMP/vote.json"), balance $(jq -r .balance "$TMP/vote.json"))"
    fi

    # The comment: comment.json's entity is the signed JSON *text*; its content must state
    # this decision in the headline every comment has, and carry this manifest's hash.
    HEADLINE="cybergov votes $U_DECIDED on $NETWORK referendum #$ID"
    if get "$BASE_URL/$RUN_PREFIX/comment.json" "$TMP/comment.json"; then
        verdict_line comment "$(jq -r --arg h "$H" --arg head "$HEADLINE" '
            if .manifest_sha256 != $h then "FAIL comment.json is for manifest \(.manifest_sha256), not \($h)"
            elif .entity == null then
              (if .posted then "FAIL comment.json says posted but holds no entity"
               else "PASS an existing comment carries manifest \($h) (\(.skipped_reason // "no reason given"))" end)
            else (.entity | fromjson | .content) as $c
              | if ($c | contains($head)) | not then "FAIL does not state \($head | tojson)"
                elif ($c | contains($h)) | not then "FAIL does not carry manifest \($h)"
                else "PASS states \($head | tojson) with manifest \($h)" end
            end' "$TMP/comment.json" 2>&1)"
    elif [ "$GOT" = missing ]; then
        pass comment "no comment recorded yet"
    else
        fail comment "$BASE_URL/$RUN_PREFIX/comment.json: $GOT"
    fi
else
    for c in tally "forced abstain" decision comment; do
        fail "$c" "vote.json: $RUN_PREFIX/vote.json cannot be read"
    done
fi

# The chain, found without the store: JSON-RPC over HTTP.
# rpc METHOD PARAMS: the answer's result in $TMP/rpc.json; RPC_ERR says why not.
rpc() {
    if ! curl -sS --max-time 60 -H 'Content-Type: application/json' \
        --data "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$1\",\"params\":$2}" \
        -o "$TMP/rpc.json" "$RPC_URL" 2>"$TMP/curl.err"; then
        RPC_ERR="$RPC_URL: $(head -n 1 "$TMP/curl.err")"
        return 1
    fi
    if ! jq -e 'has("result")' "$TMP/rpc.json" >/dev/null 2>&1; then
        RPC_ERR="$1: $(jq -c '.error // .' "$TMP/rpc.json" 2>/dev/null | cut -c 1-300)"
        return 1
    fi
}
result() { jq -r '.result // ""' "$TMP/rpc.json"; }
tohex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }

# SCALE in jq: bytes of a hex string, compact lengths, little-endian u128 from decimal text,
# and the (poll, AccountVote) pairs of a ConvictionVoting.Voting value.
JQ_SCALE='
def nib: if . >= 97 then . - 87 elif . >= 65 then . - 55 else . - 48 end;
def hb($i): .[$i:$i + 2] | explode | (.[0] | nib) * 16 + (.[1] | nib);
def compact($i): hb($i) as $b | ($b % 4) as $m
  | if $m == 0 then [($b / 4 | floor), 2]
    elif $m == 1 then [((hb($i) + hb($i + 2) * 256) / 4 | floor), 4]
    elif $m == 2 then [((hb($i) + hb($i + 2) * 256 + hb($i + 4) * 65536 + hb($i + 6) * 16777216) / 4 | floor), 8]
    else error("a compact length too large") end;
def hex2: "0123456789abcdef" as $d | $d[(. / 16 | floor):(. / 16 | floor) + 1] + $d[(. % 16):(. % 16) + 1];
def le128: sub("^0+"; "")
  | [foreach range(16) as $i ({n: ., b: 0};
      if .n == "" then {n: "", b: 0}
      else reduce (.n | explode[] - 48) as $d ({q: "", r: 0};
          (.r * 10 + $d) as $x | .q += ([($x / 256 | floor) + 48] | implode) | .r = $x % 256)
        | {n: (.q | sub("^0+"; "")), b: .r} end;
      .b | hex2)] | join("");
def account_vote: if .vote == "abstain" then "02" + ("0" | le128) + ("0" | le128) + (.balance | le128)
  else "00" + ((if .vote == "aye" then 128 else 0 end) + .conviction | hex2) + (.balance | le128) end;
def votes: . as $h
  | if .[0:2] != "00" then [] else compact(2) as [$n, $w]
    | reduce range($n) as $k ({p: (2 + $w), out: []};
        .p as $p | ($h[$p + 8:$p + 10]) as $v
        | (if $v == "00" then 36 elif $v == "01" then 66 elif $v == "02" then 98
           else error("unknown AccountVote variant \($v)") end) as $len
        | .out += [{poll: $h[$p:$p + 8], vote: $h[$p + 8:$p + 8 + $len]}]
        | .p = $p + 8 + $len)
    | .out end;
def le_number: [range(0; length; 2) as $i | hb($i)] | reverse | reduce .[] as $b (0; . * 256 + $b);
def describe: if .[0:2] == "00" then hb(2) as $b
    | "Standard { \(if $b >= 128 then "aye" else "nay" end), conviction \($b % 128), balance \(.[4:36] | le_number) }"
  elif .[0:2] == "02" then "SplitAbstain { aye \(.[2:34] | le_number), nay \(.[34:66] | le_number), abstain \(.[66:98] | le_number) }"
  elif .[0:2] == "01" then "Split { aye \(.[2:34] | le_number), nay \(.[34:66] | le_number) }"
  else "an unknown vote" end;
'
WANT=$(jq -r "$JQ_SCALE"'.decision | account_vote' "$TMP/manifest.json" 2>&1)
WANT_TEXT=$(jq -rn --arg v "$WANT" "$JQ_SCALE"'$v | describe')
POLL=$(printf '%08x' "$ID" | sed 's/\(..\)\(..\)\(..\)\(..\)/\4\3\2\1/')
REMARK="cybergov:v1:$NETWORK:$ID:$RUN:$H"
REMARK_HEX=$(tohex "$REMARK")
REMARK_HASH=$(printf '%s' "$REMARK" | b2sum -l 256 | cut -d ' ' -f 1)
VOTING_FOR=0x074b65e262fcd5bd9c785caf7f42e00a29f2dc2b64e354002faef2a81f1aa8bb
SYSTEM_EVENTS=0x26aa394eea5630e07c48ae0c9558cef780d41e5e16056765bc8461851072c9d7
CHAIN_ERR=

# The account's standing vote: ConvictionVoting.VotingFor(real, class) for every class the
# account has (the keys end in twox64(real) ++ real ++ twox64(class) ++ class).
STANDING=
START=null
while [ -z "$CHAIN_ERR" ]; do
    if ! rpc state_getKeysPaged "[\"$VOTING_FOR\", 1000, $START]"; then
        CHAIN_ERR=$RPC_ERR
        break
    fi
    jq -r '.result // [] | .[]' "$TMP/rpc.json" >"$TMP/keys.txt"
    while read -r key; do
        [ "$(printf '%s' "$key" | cut -c 83-146)" = "$REAL" ] || continue
        rpc state_getStorage "[\"$key\"]" || { CHAIN_ERR=$RPC_ERR; break; }
        v=$(jq -r --arg poll "$POLL" "$JQ_SCALE"'.result // "" | ltrimstr("0x")
            | [votes[] | select(.poll == $poll) | .vote] | first // ""' "$TMP/rpc.json" 2>&1) ||
            { CHAIN_ERR="VotingFor: $v"; break; }
        if [ -n "$v" ]; then STANDING=$v; fi
    done <"$TMP/keys.txt"
    [ "$(wc -l <"$TMP/keys.txt")" -ge 1000 ] || break
    START="\"$(tail -n 1 "$TMP/keys.txt")\""
done

# The remark: the hint block first (receipt.json's, if any), then the range, newest first.
BEST=
if [ -z "$CHAIN_ERR" ]; then
    if rpc chain_getHeader '[]'; then
        BEST=$(($(jq -r '.result.number' "$TMP/rpc.json")))
    else
        CHAIN_ERR=$RPC_ERR
    fi
fi
FOUND_AT=
CARRIED=
if [ -z "$CHAIN_ERR" ]; then
    TO=${TO_BLOCK:-$BEST}
    [ "$TO" -le "$BEST" ] || TO=$BEST
    if [ -n "$FROM_BLOCK" ]; then
        FROM=$FROM_BLOCK
    else
        FROM=$((TO - MAX_BLOCKS + 1))
        [ "$FROM" -ge 0 ] || FROM=0
    fi
    HINT=
    if get "$BASE_URL/$RUN_PREFIX/receipt.json" "$TMP/receipt.json"; then
        HINT=$(jq -r '.block_number // "" | tostring' "$TMP/receipt.json" 2>/dev/null)
        case $HINT in '' | *[!0-9]*) HINT= ;; esac
        # The hint only reorders the search: a block outside the range is not searched.
        if [ -n "$HINT" ] && { [ "$HINT" -lt "$FROM" ] || [ "$HINT" -gt "$TO" ]; }; then HINT=; fi
    fi
    n=$TO
    [ -z "$HINT" ] || n=$HINT
    while [ -z "$FOUND_AT" ] && [ -z "$CHAIN_ERR" ]; do
        if [ "$n" -ge 0 ] && [ "$n" -le "$BEST" ]; then
            if ! rpc chain_getBlockHash "[$n]"; then CHAIN_ERR=$RPC_ERR; break; fi
            BH=$(result)
            if ! rpc chain_getBlock "[\"$BH\"]"; then CHAIN_ERR=$RPC_ERR; break; fi
            IDX=$(jq -r --arg r "$REMARK_HEX" '[.result.block.extrinsics | to_entries[]
                | select(.value | contains($r)) | .key] | map(tostring) | join(" ")' "$TMP/rpc.json")
            if [ -n "$IDX" ]; then
                if ! rpc state_getStorage "[\"$SYSTEM_EVENTS\", \"$BH\"]"; then CHAIN_ERR=$RPC_ERR; break; fi
                EVENTS=$(result)
                case $EVENTS in
                    *"$REMARK_HASH"*)
                        if printf '%s' "$EVENTS" | grep -q "${REAL}0[012]"; then
                            FOUND_AT="extrinsic $IDX of block $n ($BH)"
                        else
                            CARRIED="$CARRIED; block $n: no ConvictionVoting.Voted event by the account"
                        fi
                        ;;
                    *) CARRIED="$CARRIED; block $n: no System.Remarked event with the remark's hash 0x$REMARK_HASH" ;;
                esac
            fi
        fi
        if [ -n "$HINT" ]; then
            HINT=
            n=$TO
            continue
        fi
        [ "$n" -gt "$FROM" ] || break
        n=$((n - 1))
    done
fi

REAL_TEXT=0x$REAL
if [ -n "$CHAIN_ERR" ]; then
    fail "vote on chain" "the chain cannot be read: $CHAIN_ERR"
    fail "remark on chain" "the chain cannot be read: $CHAIN_ERR"
    finish
fi
if [ -n "$STANDING" ]; then
    GOT_TEXT=$(jq -rn --arg v "$STANDING" "$JQ_SCALE"'$v | describe')
fi
CARRIED=${CARRIED#; }
[ -z "$CARRIED" ] || CARRIED=" ($CARRIED)"
if [ -z "$STANDING" ] && [ -z "$FOUND_AT" ]; then
    unvoted "vote on chain" "$REAL_TEXT has no vote on referendum $ID"
    unvoted "remark on chain" "no successful vote of $REAL_TEXT in blocks $FROM..=$TO carries \"$REMARK\"$CARRIED"
    finish
fi
if [ -z "$STANDING" ]; then
    fail "vote on chain" "$REAL_TEXT has no vote on referendum $ID"
elif [ "$STANDING" = "$WANT" ]; then
    pass "vote on chain" "$REAL_TEXT votes $GOT_TEXT on referendum $ID"
else
    fail "vote on chain" "$REAL_TEXT votes $GOT_TEXT on referendum $ID; the manifest decides $WANT_TEXT"
fi
if [ -n "$FOUND_AT" ]; then
    pass "remark on chain" "$FOUND_AT carries \"$REMARK\" with $REAL_TEXT's vote"
else
    fail "remark on chain" "$REAL_TEXT voted on referendum $ID, but no successful extrinsic in blocks $FROM..=$TO carries this manifest's remark \"$REMARK\"$CARRIED"
fi
finish
