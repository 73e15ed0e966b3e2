#!/bin/sh
# Prepares a stack directory (the working directory) before the first start: the log's
# signing key (unless PEDIGREE_SIGNING_KEY names one, e.g. a mounted secret), the
# witness key, and the two public verifier keys the other services pin, in public/.
# Idempotent: existing keys are kept. Used by docker-compose.yml (pedigree-init) and
# scripts/stack.sh.
#
# Usage: init.sh CONFIG_DIR   (the directory holding server.toml and witness.toml)
set -eu
conf=${1:?usage: init.sh CONFIG_DIR}
bin=${PEDIGREE_BIN:+$PEDIGREE_BIN/}
setting() { # setting FILE KEY: a string value as --print-config resolves it
    sed -n "s/^$2 = \"\(.*\)\"\$/\1/p" "$1"
}
mkdir -p public
# The witness first: the server's configuration names the witness's key file.
"${bin}pedigree" witness serve --config "$conf/witness.toml" --print-config > public/witness.effective.toml
witness_key=$(setting public/witness.effective.toml key)
witness_name=$(setting public/witness.effective.toml name)
mkdir -p "$(setting public/witness.effective.toml state)"
if [ ! -f "$witness_key" ]; then
    "${bin}pedigree" key generate --algorithm ed25519 --out "${witness_key%.key}" > /dev/null
    rm -f "${witness_key%.key}.pub"
fi
"${bin}pedigree" key vkey "$witness_key" --name "$witness_name" --witness > public/witness.vkey

"${bin}pedigree-server" --config "$conf/server.toml" --print-config > public/server.effective.toml
origin=$(setting public/server.effective.toml origin)
signing_key=$(setting public/server.effective.toml signing_key)
mkdir -p "$(setting public/server.effective.toml data_dir)"
if [ ! -f "$signing_key" ]; then
    "${bin}pedigree" key generate --algorithm ed25519 --out "${signing_key%.key}" > /dev/null
    rm -f "${signing_key%.key}.pub"
fi
"${bin}pedigree" key vkey "$signing_key" --name "$origin" > public/log.vkey
echo "log verifier key: $(cat public/log.vkey)"
echo "witness verifier key: $(cat public/witness.vkey)"
