raise_error:
  runner.error.error:
    - name: Exception
    - message: {{ data['data']['message'] }}
