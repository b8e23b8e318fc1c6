reactor-test:
  runner.event.send:
    - args:
      - tag: test_reaction
      - data:
          test_reaction: True
