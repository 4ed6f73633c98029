-- Record where a model's card is (jobs/train/model_card.py).
UPDATE model_registry SET model_card = %(path)s WHERE model_version = %(model)s;
