#!/usr/bin/env bash
# Build helm (pinned below) from the Go module proxy into ~/.cache/fairuse/helm-<version>/helm,
# once; the chart tests (tests/unit/ops/test_helm_chart.py) use it. Without Go nothing is built
# and those tests skip with their reason; a failed build fails in CI (CI=true) only.
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.21.4}"
dir="${FAIRUSE_CACHE_DIR:-$HOME/.cache/fairuse}/helm-$HELM_VERSION"
if [[ -x "$dir/helm" ]]; then
  exit 0
fi
if ! command -v go >/dev/null; then
  echo "helm: no Go toolchain; the chart tests will skip" >&2
  exit 0
fi
echo "helm: building $HELM_VERSION from the Go module proxy into $dir (once; minutes)" >&2
mkdir -p "$dir"
if ! GOBIN="$dir" GOFLAGS=-mod=mod nice go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"; then
  echo "helm: the build failed" >&2
  [[ "${CI:-}" == "true" ]] && exit 1
fi
exit 0
