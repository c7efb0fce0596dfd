#!/usr/bin/env bash
# make deploy-chat: applies examples/chat-api/kubernetes/ to the current kubeconfig context,
# in order, with the Rollout of one strategy, then shows where the rollout stands.
#
#   make deploy-chat                                   # the rolling update, the image in 10-chat-api.yaml
#   make deploy-chat STRATEGY=canary CHAT_IMAGE=...:v2.0   # a new model: ramp rolls it out
#   make deploy-chat PROMETHEUS=http://prometheus.monitoring:9090
#
# STRATEGY    rolling (default), canary (needs Istio) or bluegreen: rollouts/STRATEGY.yaml
# CHAT_IMAGE  the image to run; empty means the one running now (or, on the first deploy,
#             the one in 10-chat-api.yaml), so that deploying again never rolls back a
#             model changed with `kubectl set image`
# PROMETHEUS  the Prometheus address written into the AnalysisTemplates; empty means theirs
# WAIT        how long `ramp status` waits for the rollout to end (default 10m; 0: no wait;
#             the canary's default is 0: it waits at 5% for `kubectl ramp promote`)
# RAMP        the ramp binary (default: bin/ramp, else ramp on PATH); KUBECTL likewise
#
# ramp's CRDs and controller must be installed first (kubectl apply -k config/default, or the
# Helm chart); the script stops with a hint when they are not.
set -euo pipefail

dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$dir/../../.." && pwd)
ns=carepath-demo
strategy=${STRATEGY:-rolling}
kubectl=${KUBECTL:-kubectl}
if [[ -z "${RAMP:-}" ]]; then
	if [[ -x "$root/bin/ramp" ]]; then RAMP=$root/bin/ramp; else RAMP=ramp; fi
fi
wait=${WAIT:-10m}
if [[ "$strategy" == canary && -z "${WAIT:-}" ]]; then wait=0; fi

rollout=$dir/rollouts/$strategy.yaml
if [[ ! -f "$rollout" ]]; then
	echo "deploy-chat: STRATEGY=$strategy: no $rollout (rolling, canary or bluegreen)" >&2
	exit 2
fi
if ! "$kubectl" get crd rollouts.ramp.dev >/dev/null 2>&1; then
	echo "deploy-chat: ramp is not installed in this cluster (no CRD rollouts.ramp.dev): kubectl apply -k config/default, or helm install ramp charts/ramp" >&2
	exit 1
fi

image=${CHAT_IMAGE:-}
if [[ -z "$image" ]]; then
	image=$("$kubectl" -n "$ns" get deployment chat-api -o 'jsonpath={.spec.template.spec.containers[?(@.name=="chat-api")].image}' 2>/dev/null || true)
fi

# The chat-api container's image line (the one rewritten below).
image_line='^\(        image: \).*carepath-chat-api:.*$'
if [[ -n "$image" ]] && ! grep -q "$image_line" "$dir/10-chat-api.yaml"; then
	echo "deploy-chat: 10-chat-api.yaml has no line '        image: ...carepath-chat-api:TAG' to set CHAT_IMAGE=$image in; change the pattern in $0 to your image's name" >&2
	exit 2
fi

set -x
"$kubectl" apply -f "$dir/00-namespace.yaml"
if [[ -n "$image" ]]; then
	# The image line of the chat-api container, and no other.
	sed "s|$image_line|\1$image|" "$dir/10-chat-api.yaml" | "$kubectl" apply -f -
else
	"$kubectl" apply -f "$dir/10-chat-api.yaml"
fi
"$kubectl" apply -f "$dir/20-services.yaml" -f "$dir/22-test-suite-account.yaml"
if [[ "$strategy" == canary ]]; then
	"$kubectl" apply -f "$dir/21-virtualservice.yaml"
fi
if [[ -n "${PROMETHEUS:-}" ]]; then
	sed "s|address: http://prometheus.monitoring:9090|address: $PROMETHEUS|" "$dir/30-analysis.yaml" | "$kubectl" apply -f -
else
	"$kubectl" apply -f "$dir/30-analysis.yaml"
fi
"$kubectl" apply -f "$rollout"
set +x

# ramp in Kubernetes mode, on kubectl's current context.
ramp=("$RAMP" --context "$("$kubectl" config current-context)" -n "$ns")
# The rollout's end: exit 0 Healthy (promoted), 1 Degraded (aborted), 2 still going at WAIT.
rc=0
if [[ "$wait" != 0 ]]; then
	"${ramp[@]}" status chat-api --timeout "$wait" || rc=$?
fi
"${ramp[@]}" get chat-api
exit "$rc"
