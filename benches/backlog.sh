# shellcheck shell=bash
# Sourced by benches/ab.sh and benches/drain_profile.sh: the sends not yet handed to the
# provider (`delivery_state` still `queued` or `sending`, as the API shows them), and the wait
# for a drain to work them off.

# pending_sends DATABASE_URL: how many sends are pending.
pending_sends() {
  psql -qtAX "$1" -c "SELECT count(*) FROM messages WHERE direction = 'outbound' AND delivery_state IN ('queued', 'sending')"
}

# wait_drained DATABASE_URL T0_NS: polls every 0.2 s until no send is pending, or 600 s after
# T0_NS (`date +%s%N`); prints how many are left.
wait_drained() {
  local left
  left=$(pending_sends "$1")
  while [ "$left" -gt 0 ] && [ $(($(date +%s%N) - $2)) -lt 600000000000 ]; do
    sleep 0.2
    left=$(pending_sends "$1")
  done
  echo "$left"
}
