install_zsh:
  cmd.state.single:
    - tgt: test
    - args:
      - fun: pkg.installed
      - name: {{ data['data']['pkg'] }}
      - fromrepo: {{ data['data']['repo'] }}
