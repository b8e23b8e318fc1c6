install_zsh:
  cmd.state.single:
    - tgt: test
    - arg:
      - pkg.installed
      - {{ data['data']['pkg'] }}
    - kwarg:
        fromrepo: {{ data['data']['repo'] }}
