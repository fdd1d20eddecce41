# shellcheck shell=bash
# render_template TEMPLATE OUTPUT NAME=VALUE... — copies TEMPLATE to OUTPUT with every @NAME@
# replaced by VALUE (any characters), and fails if a placeholder is left unfilled.
render_template() {
    local template=$1 output=$2 text pair name value
    shift 2
    text=$(<"$template") || return 1
    if [[ -z ${text//[[:space:]]/} ]]; then
        echo "render_template: $template is empty" >&2
        return 1
    fi
    for pair in "$@"; do
        name=${pair%%=*} value=${pair#*=}
        text=${text//@"$name"@/$value}
    done
    if [[ $text =~ @[A-Z_]+@ ]]; then
        echo "render_template: $template: ${BASH_REMATCH[0]} has no value" >&2
        return 1
    fi
    printf '%s\n' "$text" >"$output"
}
