#   sluice certificate seed: not a real key
metadata
    name = "seed"
curve
    public-key = "0000000000000000000000000000000000000000"
    secret-key = "1111111111111111111111111111111111111111"
