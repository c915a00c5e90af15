#!/bin/sh
# Regenerates the TEST-ONLY private keys in keys/ (PKCS#8 PEM). Run once; then regenerate
# the JWKS and the token corpus with:
#   cargo test --lib mcp_auth::tests::regenerate_corpus -- --ignored
# Changing the keys invalidates every token in tokens.tsv, so commit all three together.
set -eu
cd "$(dirname "$0")/keys"
rsa() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:"$2" -out "$1.pem"; }
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:"$2" -pkeyopt ec_param_enc:named_curve -out "$1.pem"; }
rsa rsa-2048 2048
rsa rsa-4096 4096
rsa rsa-ps256 2048
rsa rsa-enc 2048
rsa attacker-rsa 2048
ec ec-p256 P-256
ec ec-p384 P-384
ec attacker-p256 P-256
openssl genpkey -algorithm ED25519 -out ed-25519.pem
