raise_error:
  runner.error.error:
    - args:
      - name: Exception
      - message: {{ data['data']['message'] }}
