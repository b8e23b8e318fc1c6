install_zsh:
  local.state.single:
    - tgt: test
    - args:
      - fun: pkg.installed
      - name: {{ data['data']['pkg'] }}
      - fromrepo: {{ data['data']['repo'] }}
