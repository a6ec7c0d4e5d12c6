#!/usr/bin/env bash
# Drive one real coding agent through the proxy against a fake upstream (see README.md).
# usage: run_agent.sh <upstream provider> <claude|codex|gemini|claude-tools>
set -u
PROV=$1; AGENT=$2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${AGENTS_DIR:-/tmp/agents}; BIN=$WORK/node_modules/.bin
PROXY_PORT=18999; FAKE_PORT=18998
mkdir -p "$WORK/cfg" "$WORK/home/.codex" "$WORK/home/.gemini"
cd "$ROOT"
if [ "$AGENT" = claude-tools ]; then
  echo "the secret word is pineapple" > "$WORK/hello.txt"
  python -m bench.agents.scripted_gemini --port $FAKE_PORT --file "$WORK/hello.txt" \
    --dump "$WORK/dump.jsonl" > "$WORK/fake.out" 2>&1 &
else
  python -m bench.fake_upstream --port $FAKE_PORT --events 5 > "$WORK/fake.out" 2>&1 &
fi
FAKE=$!
for _ in $(seq 50); do grep -q READY "$WORK/fake.out" && break; sleep 0.1; done
BASE=http://127.0.0.1:$FAKE_PORT
case $PROV in openai|openai-responses) BASE=$BASE/v1 ;; esac
cat > "$WORK/cfg/config.yaml" <<YAML
listen: {host: 127.0.0.1, port: $PROXY_PORT}
logging: {file: "$WORK/requests.jsonl", stdout: false}
upstreams:
  - name: fake-$PROV
    provider: $PROV
    base_url: $BASE
    api_key: upstream-key-123456789
    model: fake-model
    models: ["*"]
YAML
cat > "$WORK/home/.codex/config.toml" <<TOML
model = "gpt-5.1-codex"
model_provider = "ccx"
[model_providers.ccx]
name = "ccx-tray"
base_url = "http://127.0.0.1:$PROXY_PORT/v1"
env_key = "OPENAI_API_KEY"
wire_api = "responses"
TOML
echo '{"security":{"auth":{"selectedType":"gemini-api-key"}},"usageStatisticsEnabled":false}' \
  > "$WORK/home/.gemini/settings.json"
rm -f "$WORK/requests.jsonl"
python -m ccx_tray --headless --config "$WORK/cfg/config.yaml" 2> "$WORK/proxy.err" &
PROXY=$!
for _ in $(seq 50); do grep -q listening "$WORK/proxy.err" && break; sleep 0.1; done
export HOME=$WORK/home DISABLE_TELEMETRY=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1
URL=http://127.0.0.1:$PROXY_PORT
case $AGENT in
  claude) ANTHROPIC_BASE_URL=$URL ANTHROPIC_API_KEY=sk-ant-local timeout 120 \
    "$BIN/claude" -p "Say hello" --model claude-sonnet-4-5 ;;
  claude-tools) ANTHROPIC_BASE_URL=$URL ANTHROPIC_API_KEY=sk-ant-local timeout 120 \
    "$BIN/claude" -p "Read $WORK/hello.txt and tell me the secret word" \
    --allowedTools Read --model claude-sonnet-4-5 ;;
  codex) OPENAI_API_KEY=sk-local timeout 120 "$BIN/codex" exec --skip-git-repo-check "Say hello" ;;
  gemini) GEMINI_CLI_TRUST_WORKSPACE=true GOOGLE_GEMINI_BASE_URL=$URL GEMINI_API_KEY=local \
    timeout 120 "$BIN/gemini" -p "Say hello" ;;
esac
echo "agent exit code: $?"
kill $PROXY $FAKE 2>/dev/null; wait 2>/dev/null
echo "--- proxy log lines"
python - "$WORK/requests.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    print(d["dialect"], d["model"], "->", d["upstream"], d["status"], "stream" if d["stream"] else "json", d["error"] or "")
PY
