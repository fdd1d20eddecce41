# shellcheck shell=bash
# write_daemon_configs DIR WORKING_DB ACCOUNTING_DB ACCOUNTING_FILE PARENT_CGROUP WORKING_PORT ACCOUNTING_PORT
#
# Writes DIR/working.cfg and DIR/accounting.cfg from the samples in etc/ (run from the
# repository's root), for a pair of test daemons: the test engine ($BDOCKER_TEST_DOCKER_URL),
# the admin token DIR/admin_token, the socket DIR/run/bdockerd.sock, bind staging DIR/binds,
# cgroups on under PARENT_CGROUP, a sample every second, and the accounting daemon on
# 127.0.0.1:ACCOUNTING_PORT. Used by tools/e2e-gridengine.sh and tools/soak.sh.
write_daemon_configs() {
    local dir=$1 wdb=$2 adb=$3 afile=$4 parent=$5 wport=$6 aport=$7
    sed -e "s#^socket = .*#socket = $dir/run/bdockerd.sock#" -e "s#^bind_staging = .*#bind_staging = $dir/binds#" \
        -e "s#^port = .*#port = $wport#" -e "s#^database = .*#database = $wdb#" \
        -e "s#^base_url = .*#base_url = $BDOCKER_TEST_DOCKER_URL#" -e "s#^admin_token_file = .*#admin_token_file = $dir/admin_token#" \
        -e "s#^parent_cgroup = .*#parent_cgroup = $parent#" -e "s#^enable_cgroups = .*#enable_cgroups = true#" \
        -e "s#^monitoring_time = .*#monitoring_time = 1#" \
        -e "s#^accounting_endpoint = .*#accounting_endpoint = http://127.0.0.1:$aport#" etc/configure_bdocker.cfg >"$dir/working.cfg"
    sed -e "s#^port = .*#port = $aport#" -e "s#^database = .*#database = $adb#" \
        -e "s#^admin_token_file = .*#admin_token_file = $dir/admin_token#" \
        -e "s#^bdocker_accounting = .*#bdocker_accounting = $afile#" \
        etc/configure_bdocker_accounting.cfg >"$dir/accounting.cfg"
    chmod 644 "$dir"/*.cfg
}
