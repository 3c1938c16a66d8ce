#!/usr/bin/env bash
# Fresh random secrets for docker-compose.yml, as a .env file:
#   scripts/compose-secrets.sh > .env && docker compose up --build
# Keep the file private (it holds the vault key that seals every card number).
set -euo pipefail
echo "CARDWARDEN_VAULT_KEY=$(openssl rand -hex 32)"
echo "CARDWARDEN_ADMIN_TOKEN=$(openssl rand -hex 32)"
echo "CARDWARDEN_SIM_API_KEY=sim_$(openssl rand -hex 24)"
echo "CARDWARDEN_SIM_WEBHOOK_SECRET=whsec_$(openssl rand -base64 32)"
