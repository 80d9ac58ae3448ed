# Non-secret settings of the development environment. Credentials come from the
# caller's Application Default Credentials; never put keys or tokens here.
project_id = "dark-tower-development"
region     = "europe-west1"
