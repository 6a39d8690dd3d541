#!/bin/sh
# cybergov public verifier. Needs only a POSIX shell, curl, jq and sha256sum.
#
#   scripts/verify.sh --network N --id ID [--run R] [--base-url URL] [--sidecar URL]
#
# Fetches latest.json and the run's manifest from the public base URL, checks the manifest's
# bytes hash to the recorded hash, re-hashes every artefact it lists, then reads the extrinsic
# named in receipt.json from the chain through Substrate API Sidecar (GET /blocks/{n}) and
# checks that its remark carries the manifest hash and its vote matches vote.json.
# Prints "PASS <check>: <detail>" or "FAIL <check>: <why>" per check (the same check names as
# `cybergov verify`), then PASS or FAIL; exits 1 on any failure, 2 on bad usage.

set -u

usage() {
    cat >&2 <<'USAGE'
usage: verify.sh --network polkadot|kusama|paseo --id REFERENDUM [--run RUN]
                 [--base-url URL] [--sidecar URL]
  --base-url  where the store's keys are served (default: $CYBERGOV_PUBLIC_BASE_URL)
  --sidecar   Substrate API Sidecar of the network's Asset Hub (default: the public one)
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
SIDECAR=
while [ $# -gt 0 ]; do
    case $1 in
        --network | --id | --run | --base-url | --sidecar)
            [ $# -ge 2 ] || die "$1 needs a value"
            case $1 in
                --network) NETWORK=$2 ;;
                --id) ID=$2 ;;
                --run) RUN=$2 ;;
                --base-url) BASE_URL=$2 ;;
                --sidecar) SIDECAR=$2 ;;
            esac
            shift 2
            ;;
        --network=*) NETWORK=${1#*=}; shift ;;
        --id=*) ID=${1#*=}; shift ;;
        --run=*) RUN=${1#*=}; shift ;;
        --base-url=*) BASE_URL=${1#*=}; shift ;;
        --sidecar=*) SIDECAR=${1#*=}; shift ;;
        -h | --help) usage 0 ;;
        *) printf 'verify.sh: unknown argument %s\n' "$1" >&2; usage 2 ;;
    esac
done

case $NETWORK in
    polkadot) DEFAULT_SIDECAR=https://polkadot-asset-hub-public-sidecar.parity-chains.parity.io ;;
    kusama) DEFAULT_SIDECAR=https://kusama-asset-hub-public-sidecar.parity-chains.parity.io ;;
    paseo) DEFAULT_SIDECAR= ;;
    '') die "--network is required" ;;
    *) die "unknown network $NETWORK: expected polkadot, kusama or paseo" ;;
esac
case $ID in '' | *[!0-9]*) die "--id must be a referendum index (digits)" ;; esac
case $RUN in *[!0-9]* | 0) die "--run must be a run number (1 or more)" ;; esac
[ -n "$BASE_URL" ] || die "--base-url is required (or set CYBERGOV_PUBLIC_BASE_URL)"
case $BASE_URL in http://* | https://*) ;; *) die "--base-url must be an http(s) URL" ;; esac
BASE_URL=${BASE_URL%/}
[ -n "$SIDECAR" ] || SIDECAR=$DEFAULT_SIDECAR
SIDECAR=${SIDECAR%/}

for tool in curl jq sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done

TMP=$(mktemp -d 2>/dev/null) || TMP=${TMPDIR:-/tmp}/cybergov-verify.$$
mkdir -p "$TMP" || die "cannot create a temporary folder"
trap 'rm -rf "$TMP"' EXIT
trap 'exit 2' HUP INT TERM

FAILS=0
pass() { printf 'PASS %s: %s\n' "$1" "$2"; }
fail() {
    printf 'FAIL %s: %s\n' "$1" "$2"
    FAILS=$((FAILS + 1))
}
finish() {
    if [ "$FAILS" -eq 0 ]; then
        echo PASS
        exit 0
    fi
    echo "FAIL ($FAILS failed)"
    exit 1
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

# jq helpers shared by the chain checks: hex and decimal amounts, AccountVote rendering.
JQ_DEFS='
def hexval: if . >= 97 then . - 87 elif . >= 65 then . - 55 else . - 48 end;
def unhex: ltrimstr("0x") | explode | [range(0; length; 2) as $i | (.[$i] | hexval) * 16 + (.[$i + 1] | hexval)] | implode;
def dec: if type == "number" then tostring
  elif type == "string" then
    (if startswith("0x") then (ltrimstr("0x") | explode | reduce .[] as $c (0; . * 16 + ($c | hexval)) | tostring)
     else sub("^0+(?=.)"; "") end)
  else "?" end;
def variant($n): if type == "object" then (to_entries | map(select(.key | ascii_downcase == ($n | ascii_downcase))) | first | .value) else null end;
def convbyte: if type == "object" then
    ((if .aye then 128 else 0 end)
     + (.conviction | if type == "string" then (if . == "None" then 0 else (ltrimstr("Locked") | rtrimstr("x") | tonumber) end) else . end))
  else (dec | tonumber) end;
def vote: if variant("standard") != null then
    (variant("standard") | (.vote | convbyte) as $b
     | "Standard { \(if $b >= 128 then "aye" else "nay" end), conviction \($b % 128), balance \(.balance | dec) }")
  elif variant("splitAbstain") != null then
    (variant("splitAbstain") | "SplitAbstain { aye \(.aye | dec), nay \(.nay | dec), abstain \(.abstain | dec) }")
  elif variant("split") != null then
    (variant("split") | "Split { aye \(.aye | dec), nay \(.nay | dec) }")
  else error("unknown AccountVote shape \(tojson)") end;
'

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

# Every listed artefact: fetch, re-hash, compare length and hash.
TAB=$(printf '\t')
jq -r '(.inputs + .outputs)[] | "\(.name)\t\(.path)\t\(.sha256)\t\(.bytes)"' \
    "$TMP/manifest.json" >"$TMP/artefacts.tsv"
while IFS=$TAB read -r name path want bytes; do
    case $path in
        "$RUN_PREFIX"/*) ;;
        *) fail "artefact $name" "$path lies outside this run's folder $RUN_PREFIX/"; continue ;;
    esac
    case $path in
        *..* | *//* | *' '*) fail "artefact $name" "invalid path $path"; continue ;;
    esac
    if get "$BASE_URL/$path" "$TMP/artefact"; then
        got=$(sha "$TMP/artefact")
        n=$(size "$TMP/artefact")
        if [ "$got" = "$want" ] && [ "$n" = "$bytes" ]; then
            pass "artefact $name" "$n bytes, sha256 $got"
        else
            fail "artefact $name" "$path has $n bytes with sha256 $got; the manifest lists $bytes bytes with sha256 $want"
        fi
    elif [ "$GOT" = missing ]; then
        fail "artefact $name" "$path is missing"
    else
        fail "artefact $name" "$BASE_URL/$path: $GOT"
    fi
done <"$TMP/artefacts.tsv"

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
CHOOSE='[.scores[] | select(.option == "AYE" or .option == "NAY" or .option == "ABSTAIN")] as $s
    | if ($s | length) == 0 then "abstain"
      else ($s | map(.logprob) | max) as $m | [$s[] | select(.logprob == $m)]
        | if length == 1 then (.[0].option | ascii_downcase) else "abstain" end end'
upper() { printf '%s' "$1" | tr '[:lower:]' '[:upper:]'; }
: >"$TMP/juror-votes.tsv"
jq -r '.outputs[] | select(.name | startswith("jurors/")) | .path' "$TMP/manifest.json" >"$TMP/jurors.txt"
while read -r path; do
    if ! get "$BASE_URL/$path" "$TMP/juror.json" ||
        ! J=$(jq -r "\"\(.juror)\t\(.vote)\t\($CHOOSE)\"" "$TMP/juror.json" 2>/dev/null); then
        fail "juror jurors/${path##*/}" "$path cannot be read as a juror file"
        continue
    fi
    juror=$(printf '%s' "$J" | cut -f 1)
    voted=$(printf '%s' "$J" | cut -f 2)
    follows=$(printf '%s' "$J" | cut -f 3)
    if [ "$voted" = "$follows" ]; then
        pass "juror $juror vote" "$(upper "$voted") follows from its scores"
    else
        fail "juror $juror vote" "records $(upper "$voted") but its own scores give $(upper "$follows")"
    fi
    printf '%s\t%s\n' "$juror" "$voted" >>"$TMP/juror-votes.tsv"
done <"$TMP/jurors.txt"
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
          elif $n > 0 and $abs == $n then "abstain"
          elif $aye == $n then "aye"
          elif $nay == $n then "nay"
          elif allowed($aye; $nay) then "aye"
          elif allowed($nay; $aye) then "nay"
          else "abstain" end' "$TMP/vote.json")
    DECIDED=$(jq -r '.decision' "$TMP/vote.json")
    RULE=$(jq -r '.rule' "$TMP/vote.json")
    U_DECIDED=$(printf '%s' "$DECIDED" | tr '[:lower:]' '[:upper:]')
    U_TALLY=$(printf '%s' "$TALLY" | tr '[:lower:]' '[:upper:]')
    if [ "$LISTED" != "$FOUND_VOTES" ]; then
        fail tally "vote.json's juror votes are not the juror files' votes"
    elif [ "$TALLY" = "$DECIDED" ]; then
        pass tally "$U_DECIDED under $RULE"
    else
        fail tally "vote.json decides $U_DECIDED but its jurors' votes give $U_TALLY under $RULE"
    fi
    if jq -e --slurpfile m "$TMP/manifest.json" '
        .decision == $m[0].decision.vote and .conviction == $m[0].decision.conviction
        and .balance == $m[0].decision.balance' "$TMP/vote.json" >/dev/null; then
        pass decision "the manifest's decision is vote.json's ($U_DECIDED)"
    else
        fail decision "the manifest's decision ($(jq -r '.decision.vote' "$TMP/manifest.json")) is not vote.json's ($DECIDED)"
    fi
else
    fail tally "$RUN_PREFIX/vote.json cannot be read"
fi
if get "$BASE_URL/$RUN_PREFIX/comment.json" "$TMP/comment.json"; then
    CONTENT=$(jq -r '.entity.content // ""' "$TMP/comment.json" 2>/dev/null || true)
    if [ -n "$CONTENT" ]; then
        case $CONTENT in
            *"$H"*"${U_DECIDED:-?}"* | *"${U_DECIDED:-?}"*"$H"*)
                pass comment "states ${U_DECIDED:-?} and manifest $H" ;;
            *) fail comment "does not state ${U_DECIDED:-?} with manifest $H" ;;
        esac
    fi
fi

# The chain: receipt.json names the extrinsic; Sidecar shows what it did.
if ! get "$BASE_URL/$RUN_PREFIX/receipt.json" "$TMP/receipt.json"; then
    if [ "$GOT" = missing ]; then
        echo "NOTE $RUN_PREFIX/receipt.json is missing: run $RUN has not been voted, so the chain was not checked"
    else
        fail receipt "$BASE_URL/$RUN_PREFIX/receipt.json: $GOT"
    fi
    finish
fi
REMARK="cybergov:v1:$NETWORK:$ID:$RUN:$H"
if ! jq -e '(.block_number | type) == "number" and (.extrinsic_hash | type) == "string"' \
    "$TMP/receipt.json" >/dev/null 2>&1; then
    fail receipt "receipt.json is invalid (no block_number or extrinsic_hash)"
    finish
fi
PROBLEMS=$(jq -r --arg n "$NETWORK" --arg id "$ID" --arg run "$RUN" --arg h "$H" --arg remark "$REMARK" '
    [ (if "\(.network) \(.referendum) \(.run)" != "\($n) \($id) \($run)" then "it is for \(.network) #\(.referendum) run \(.run)" else empty end),
      (if .manifest_sha256 != $h then "it records manifest \(.manifest_sha256), the manifest hashes to \($h)" else empty end),
      (if .remark != $remark then "its remark is \(.remark | tojson)" else empty end)
    ] | join("; ")' "$TMP/receipt.json")
BN=$(jq -r '.block_number' "$TMP/receipt.json")
XH=$(jq -r '.extrinsic_hash' "$TMP/receipt.json")
BH=$(jq -r '.block_hash // ""' "$TMP/receipt.json")
REAL=$(jq -r '.real // ""' "$TMP/receipt.json")
if [ -z "$PROBLEMS" ]; then
    pass receipt "extrinsic $XH in block $BN"
else
    fail receipt "$PROBLEMS"
fi

if [ -z "$SIDECAR" ]; then
    fail extrinsic "no Sidecar URL for $NETWORK: give --sidecar"
    finish
fi
if ! get "$SIDECAR/blocks/$BN" "$TMP/block.json"; then
    fail extrinsic "GET $SIDECAR/blocks/$BN: $GOT"
    finish
fi
GOT_BH=$(jq -r '.hash // ""' "$TMP/block.json" 2>/dev/null)
if [ -n "$BH" ] && [ "$GOT_BH" != "$BH" ]; then
    fail extrinsic "block $BN has hash $GOT_BH, receipt.json records $BH"
    finish
fi
jq --arg h "$XH" '[.extrinsics | to_entries[] | select(.value.hash == $h)] | first // empty' \
    "$TMP/block.json" >"$TMP/xt.json" 2>/dev/null
if [ ! -s "$TMP/xt.json" ]; then
    fail extrinsic "block $BN has no extrinsic $XH"
    finish
fi
if jq -e '.value | .method.pallet == "utility" and .method.method == "batchAll"
        and .success == true and (.args.calls | length) == 2' "$TMP/xt.json" >/dev/null; then
    pass extrinsic "$XH is extrinsic $(jq -r .key "$TMP/xt.json") of block $BN, a successful utility.batchAll"
else
    fail extrinsic "$(jq -r '"extrinsic \(.key) of block '"$BN"' is \(.value.method.pallet).\(.value.method.method) with \(.value.args.calls | length) calls, success \(.value.success); expected a successful utility.batchAll of 2 calls"' "$TMP/xt.json")"
    finish
fi

OUT=$(jq -r --arg remark "$REMARK" "$JQ_DEFS"'
    .value.args.calls[1] as $c
    | if $c.method.pallet == "system" and $c.method.method == "remarkWithEvent" then
        ($c.args.remark | unhex) as $t
        | if $t == $remark then "PASS \($t | tojson) carries the manifest hash"
          else "FAIL the chain'"'"'s remark is \($t | tojson), expected \($remark | tojson)" end
      else "FAIL the batch'"'"'s second call is \($c.method.pallet).\($c.method.method), not system.remarkWithEvent" end' \
    "$TMP/xt.json" 2>&1)
case $OUT in
    "PASS "*) pass remark "${OUT#PASS }" ;;
    "FAIL "*) fail remark "${OUT#FAIL }" ;;
    *) fail remark "cannot read the remark: $OUT" ;;
esac

if ! get "$BASE_URL/$RUN_PREFIX/vote.json" "$TMP/vote.json"; then
    fail "vote on chain" "vote.json cannot be fetched: $GOT"
elif ! WANT=$(jq -er "$JQ_DEFS"'
        (.decision | ascii_downcase) as $d | (.balance | dec) as $b
        | if $d == "abstain" then "SplitAbstain { aye 0, nay 0, abstain \($b) }"
          elif $d == "aye" or $d == "nay" then "Standard { \($d), conviction \(.conviction // 0), balance \($b) }"
          else error("decision \($d) is not aye, nay or abstain") end' "$TMP/vote.json" 2>"$TMP/jq.err"); then
    fail "vote on chain" "vote.json cannot be read: $(head -n 1 "$TMP/jq.err")"
else
    OUT=$(jq -r --arg want "$WANT" --arg id "$ID" --arg real "$REAL" "$JQ_DEFS"'
        .value as $x | $x.args.calls[0] as $c0
        | try (
            (if $c0.method.pallet == "proxy" and $c0.method.method == "proxy" then
                (if $real != "" and $c0.args.real != $real and ($c0.args.real | variant("id")) != $real
                 then error("the proxy voted for \($c0.args.real | tojson), receipt.json names \($real)")
                 else $c0.args.call end)
             else $c0 end) as $v
            | [$x.events[]? | select(.method.pallet == "proxy" and .method.method == "ProxyExecuted")
                | .data[0] | variant("err") | select(. != null)] as $errs
            | if $v.method.pallet != "convictionVoting" or $v.method.method != "vote" then
                "FAIL the batch'"'"'s first call is \($v.method.pallet).\($v.method.method), not convictionVoting.vote (through proxy.proxy)"
              elif ($v.args.pollIndex | dec) != $id then
                "FAIL the vote is on poll \($v.args.pollIndex), not referendum \($id)"
              elif ($errs | length) > 0 then
                "FAIL the proxied vote failed on chain: \($errs[0] | tojson)"
              else ($v.args.vote | vote) as $got
                | if $got == $want then "PASS \($got) on referendum \($id) matches vote.json"
                  else "FAIL the chain has \($got), vote.json asks for \($want)" end
              end)
          catch "FAIL \(.)"' "$TMP/xt.json" 2>&1)
    case $OUT in
        "PASS "*) pass "vote on chain" "${OUT#PASS }" ;;
        "FAIL "*) fail "vote on chain" "${OUT#FAIL }" ;;
        *) fail "vote on chain" "cannot read the vote: $OUT" ;;
    esac
fi

finish
