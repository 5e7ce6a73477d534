# Thin aliases for ./dev (which installs what it needs first).
.PHONY: demo test unit functional integration bench setup
demo:        ; ./dev demo
test:        ; ./dev test
unit:        ; ./dev test unit
functional:  ; ./dev test functional
integration: ; ./dev test integration
bench:       ; ./dev bench
setup:       ; ./dev setup
