# Non-secret settings of the staging environment. Credentials come from the
# caller's Application Default Credentials; never put keys or tokens here.
project_id = "dark-tower-staging"
region     = "europe-west1"
