# Non-secret settings of the production environment. Credentials come from the
# caller's Application Default Credentials; never put keys or tokens here.
project_id = "dark-tower-production"
region     = "europe-west1"
