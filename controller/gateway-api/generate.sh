#!/usr/bin/env bash
# Regenerates src/apis/experimental/*.rs from ../crds with kopium 0.24.1
# (`cargo install kopium --version 0.24.1 --locked`), the generator of the crates.io gateway-api
# crate, without its JsonSchema derive (Sluice never installs CRDs from types).
set -euo pipefail
cd "$(dirname "$0")"
for kind in gatewayclasses gateways httproutes grpcroutes tlsroutes referencegrants listenersets backendtlspolicies; do
  kopium -f "../crds/gateway.networking.k8s.io_${kind}.yaml" --api-version v1 \
    --schema=disabled --derive=Default --derive=PartialEq --docs \
    | sed "s#-f ../crds/#-f controller/crds/#" > "src/apis/experimental/${kind}.rs"
done
# cargo fmt --check runs over the workspace, generated code included.
rustfmt --edition 2021 src/apis/experimental/*.rs
